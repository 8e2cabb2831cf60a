"""The survey's 4-boolean task: a balanced rule of all four bits, the stated sample and flip rate, the
information it carries, and repeated inputs seen by the binning estimator as such."""
import math

import numpy as np
import pytest
import torch

from ibtui.data.boolean import boolean4_patterns, boolean4_rule, boolean4_sample, load_boolean4
from ibtui.engine.trainer import Engine
from ibtui.measures.binning import BinSpec, binning_mi
from ibtui.scenario import load_scenario, parse_scenario
from tests.conftest import REPO

P = 0.07
H_B = -(P * math.log2(P) + (1 - P) * math.log2(1 - P))  # 0.36592 bits


def entropy_bits(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def info(idx: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Plug-in (H(Y|X), I(X;Y)) in bits of a sample, X = pattern index."""
    joint = np.bincount(idx * 2 + y, minlength=32).reshape(16, 2)
    h_x, h_y, h_xy = entropy_bits(joint.sum(1)), entropy_bits(joint.sum(0)), entropy_bits(joint.ravel())
    return h_xy - h_x, h_x + h_y - h_xy


def test_rule_is_balanced_self_dual_and_uses_every_bit():
    x = boolean4_patterns()
    y = boolean4_rule(x)
    assert x.shape == (16, 4) and len(np.unique(x, axis=0)) == 16
    assert y.sum() == 8  # p(y=1) = 1/2 exactly
    assert np.array_equal(boolean4_rule(1 - x), 1 - y)  # self-dual
    for bit in range(4):
        flipped = x.copy()
        flipped[:, bit] ^= 1
        assert (boolean4_rule(flipped) != y).any(), f"bit {bit} never matters"
    # Population: X uniform on 16 patterns, y flipped w.p. 0.07: I(X;Y) = 1 − H_b(0.07) = 0.6341 bits exactly.
    joint = np.zeros((16, 2))
    joint[np.arange(16), y] = (1 - P) / 16
    joint[np.arange(16), 1 - y] = P / 16
    i_xy = entropy_bits(joint.sum(1)) + entropy_bits(joint.sum(0)) - entropy_bits(joint.ravel())
    assert i_xy == pytest.approx(0.6341, abs=5e-5) and i_xy == pytest.approx(1 - H_B, abs=1e-12)


def test_sample_counts_flip_rate_and_information():
    idx, y, flipped = boolean4_sample(4096, P)
    counts = np.bincount(idx, minlength=16)
    # Binomial(4096, 1/16): mean 256, sd 15.5; the fixed sample stays within 4 sd of every count.
    assert counts.sum() == 4096 and np.all(np.abs(counts - 256) < 62)
    # Flip rate: sd sqrt(0.07·0.93/4096) = 0.004; the fixed sample has 0.0723.
    assert abs(flipped.mean() - P) < 0.016
    assert np.array_equal(y, boolean4_rule(boolean4_patterns()[idx]) ^ flipped)
    h_y_x, i_xy = info(idx, y)
    # H(Y|X) = H_b(0.07) = 0.3659 ± 0.045 (3 sd: dH_b/dp = 3.73 bits times the flip-rate sd); sample: 0.3704.
    assert abs(h_y_x - H_B) < 0.045
    # I(X;Y) ≤ 1 − H_b(0.07) = 0.6341 bits (population bound; this fixed sample gives 0.6295).
    assert i_xy <= 0.6341
    # The sample is fixed: the same for every call (it belongs to the task, not to a seed).
    idx2, y2, _ = boolean4_sample(4096, P)
    assert np.array_equal(idx, idx2) and np.array_equal(y, y2)


def test_load_boolean4_dataset():
    sc = parse_scenario('[data]\ndataset = "boolean4"\n[model]\nhidden = [4, 4, 4, 4]')
    d = load_boolean4(sc, [0, 1, 2], torch.device("cpu"))
    assert d.x.shape == (4096, 4) and d.x.dtype == torch.float32 and set(d.x.unique().tolist()) == {0.0, 1.0}
    assert d.y.dtype == torch.int64 and d.n_classes == 2 and not d.distinct_inputs
    patterns = torch.as_tensor(boolean4_patterns(), dtype=torch.float32)
    assert torch.equal(d.x, patterns[d.input_ids])  # input_ids = pattern index
    assert d.train.shape == (3, 4096) and (d.train.sum(1) == 3277).all() and torch.equal(d.train, ~d.test)
    assert torch.equal(d.train[0], d.train[2])  # split shared by the seeds (make_split, as SZT)
    assert "boolean4" in d.notes[0] and "0.6341" in d.notes[0]


@pytest.mark.slow  # over 2 s: keeps the README's fast set under 3 minutes on 2 cores
def test_bundled_scenario_and_binning_h_t_given_x_is_zero_for_the_deterministic_net():
    sc = load_scenario(REPO / "scenarios" / "boolean4.toml",
                       ["run.seeds=2", "run.epochs=1", "measure.snapshots=1", 'run.device="cpu"'])
    assert sc.data.dataset == "boolean4" and sc.data.samples == 4096 and sc.data.label_noise == 0.07
    assert sc.model.hidden == [4, 4, 4, 4] and sc.model.activation == "tanh"
    assert sc.train.optimizer == "sgd" and sc.train.batch_size == 16 and sc.measure.clustering.enabled
    eng = Engine(sc)
    # The clustering notes give homogeneity's ceiling with noisy labels: I(X;Y)/H(Y) of the sample.
    idx, y, _ = boolean4_sample(4096, P)
    ceiling = info(idx, y)[1] / entropy_bits(np.bincount(y))
    assert f"I(X;Y)/H(Y) = {ceiling:.4f}" in next(n for n in eng.info.notes if "inputs repeat (16 distinct)" in n)
    eng.train_epoch()
    _, layers, acts = eng.backend.snapshot(eng.mi_idx)
    x_ids = eng.ctx.x_ids(eng.mi_idx)  # what binning gets
    assert torch.equal(x_ids, eng.data.input_ids)
    for h in layers[:-1]:
        mi = binning_mi(h, BinSpec(30, -1.0, 1.0), eng.data.y, x_ids=x_ids)
        assert torch.equal(mi["H(T|X)"], torch.zeros(2))  # computed from the data, exactly 0
        torch.testing.assert_close(mi["I(X;T)"], mi["H(T)"], rtol=0, atol=1e-5)
        assert (mi["I(X;T)"] <= 4.0 + 1e-5).all()  # at most log2(16): 16 distinct inputs
    # The engine does pass the pattern ids: with them a non-function of X would show H(T|X) > 0.
    noise = torch.randn(layers[0].shape, generator=torch.Generator().manual_seed(0))
    assert (binning_mi(layers[0] + noise, BinSpec(30, -1.0, 1.0), None, x_ids=x_ids)["H(T|X)"] > 1).all()
