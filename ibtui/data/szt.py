"""The SZT 12-bit task (Shwartz-Ziv & Tishby 2017), generated from its rule, and its splits.

The original data file `var_u.mat` holds all 2**12 patterns in counting order (most significant bit in
column 0) and a label that follows an integer rule on the 12 vertices of an icosahedron (recovered from
the file; the tests check the generator against the file):
y = 1 ⇔ 206·p + 4·n1 − 44·n2 − 68·n3 > 859, with p active bits and n1/n2/n3 active neighbour /
second-neighbour / antipodal pairs. Generating it means ibtui needs no data file for SZT.
"""
from __future__ import annotations

import numpy as np
import torch

from ibtui.data.dataset import Dataset, make_split

N_BITS = 12
NEIGHBOURS = {
    0: (1, 3, 5, 10, 11), 1: (0, 2, 3, 4, 11), 2: (1, 3, 4, 8, 9), 3: (0, 1, 2, 8, 10),
    4: (1, 2, 6, 9, 11), 5: (0, 6, 7, 10, 11), 6: (4, 5, 7, 9, 11), 7: (5, 6, 8, 9, 10),
    8: (2, 3, 7, 9, 10), 9: (2, 4, 6, 7, 8), 10: (0, 3, 5, 7, 8), 11: (0, 1, 4, 5, 6),
}
ANTIPODES = ((0, 9), (1, 7), (2, 5), (3, 6), (4, 10), (8, 11))


def szt_inputs() -> np.ndarray:
    """All 4096 patterns as uint8 [4096, 12], row i = binary expansion of i, MSB in column 0."""
    i = np.arange(2**N_BITS)[:, None]
    shifts = np.arange(N_BITS - 1, -1, -1)[None, :]
    return ((i >> shifts) & 1).astype(np.uint8)


def _pair_matrix(kind: str) -> np.ndarray:
    a = np.zeros((N_BITS, N_BITS), dtype=np.int64)
    antipodal = {frozenset(p) for p in ANTIPODES}
    for i in range(N_BITS):
        for j in range(i + 1, N_BITS):
            if j in NEIGHBOURS[i]:
                k = "n1"
            elif frozenset((i, j)) in antipodal:
                k = "n3"
            else:
                k = "n2"
            a[i, j] = k == kind
    return a


def szt_labels(x: np.ndarray) -> np.ndarray:
    """The label rule applied to patterns x [n, 12] → uint8 [n]."""
    x = x.astype(np.int64)
    p = x.sum(axis=1)
    n1, n2, n3 = (np.einsum("ni,ij,nj->n", x, _pair_matrix(k), x) for k in ("n1", "n2", "n3"))
    return (206 * p + 4 * n1 - 44 * n2 - 68 * n3 > 859).astype(np.uint8)


def load_szt(sc, seeds: list[int], device: torch.device) -> Dataset:
    """The SZT data set on `device`: all 4096 patterns, split by data.split (the unshuffled split is flagged)."""
    d = sc.data
    x = szt_inputs()
    y = szt_labels(x)
    split = make_split(len(x), seeds, d.split, d.train_fraction, d.split_seed, d.split_per_seed)
    notes = []
    if split.biased:
        pos_train = y[split.train[0]].mean() * 100
        pos_test = y[split.test[0]].mean() * 100 if split.test[0].any() else float("nan")
        notes.append(f"biased split: data.split = \"unshuffled\" takes the first rows in counting order "
                     f"({pos_train:.1f} % positives in train, {pos_test:.1f} % in test), as the code of "
                     f"Shwartz-Ziv & Tishby (2017)")
    return Dataset.from_arrays("szt", x, y, split, device, distinct_inputs=True, notes=tuple(notes))
