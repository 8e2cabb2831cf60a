"""The SZT generator reproduces var_u.mat exactly, and the splits behave as documented."""
from pathlib import Path

import numpy as np
import scipy.io

from ibtui.data.szt import make_split, szt_inputs, szt_labels

VAR_U = Path(__file__).with_name("var_u.mat")


def test_generator_equals_var_u_exactly():
    mat = scipy.io.loadmat(VAR_U)
    x = szt_inputs()
    assert x.dtype == mat["F"].dtype and np.array_equal(x, mat["F"])
    assert np.array_equal(szt_labels(x), mat["y"].ravel())


def test_label_facts():
    x = szt_inputs()
    y = szt_labels(x)
    assert len(np.unique(x, axis=0)) == 4096
    assert y.sum() == 2118
    p = y.mean()
    h_y = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
    assert abs(h_y - 0.99916) < 5e-6  # I(X;Y) = H(Y) since y is a function of x
    popcount = x.sum(axis=1)
    assert y[popcount <= 4].sum() == 0 and y[popcount >= 8].all()


def test_unshuffled_split_is_the_biased_idnns_split():
    y = szt_labels(szt_inputs())
    split = make_split(4096, [0, 1], "unshuffled", 0.8, 0, per_seed=False)
    assert split.biased and split.train[0, :3277].all() and not split.train[0, 3277:].any()
    assert abs(y[split.train[0]].mean() - 0.437) < 0.001 and abs(y[split.test[0]].mean() - 0.836) < 0.001


def test_random_split_is_seeded_shared_or_per_seed():
    a = make_split(4096, [0, 1, 2], "random", 0.8, 7, per_seed=False)
    b = make_split(4096, [5], "random", 0.8, 7, per_seed=False)
    assert not a.biased and a.train.sum(axis=1).tolist() == [3277] * 3
    assert (a.train == b.train[0]).all() and (a.test == ~a.train).all()
    c = make_split(4096, [0, 1], "random", 0.5, 7, per_seed=True)
    assert c.train.sum(axis=1).tolist() == [2048, 2048] and not np.array_equal(c.train[0], c.train[1])
    assert np.array_equal(make_split(4096, [1], "random", 0.5, 0, per_seed=True).train[0], c.train[1])
