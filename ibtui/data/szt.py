"""The SZT 12-bit task (Shwartz-Ziv & Tishby 2017), generated from its rule, and its splits.

`var_u.mat` holds all 2**12 patterns in counting order (most significant bit in column 0) and a
label that follows an integer rule on the 12 vertices of an icosahedron (shared/data/szt/README.md):
y = 1 ⇔ 206·p + 4·n1 − 44·n2 − 68·n3 > 859, with p active bits and n1/n2/n3 active neighbour /
second-neighbour / antipodal pairs. Generating it means ibtui needs no data file for SZT.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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


@dataclass(frozen=True)
class Split:
    """Train/test membership per seed as boolean masks [S, N] (seeds may share one split)."""

    train: np.ndarray
    test: np.ndarray
    biased: bool = False  # True for the original unshuffled split


def make_split(n: int, seeds: list[int], mode: str, train_fraction: float, split_seed: int,
               per_seed: bool) -> Split:
    """Split n points into train/test.

    mode "random": a random permutation (numpy PCG64 from `split_seed`, or from the run seed when
    `per_seed`); mode "unshuffled": the first round(f·n) rows in counting order, as IDNNs does — biased
    on SZT (43.7 % positives in train, 83.6 % in test), so it is flagged.
    """
    n_train = int(round(train_fraction * n))
    masks = np.zeros((len(seeds), n), dtype=bool)
    if mode == "unshuffled":
        masks[:, :n_train] = True
    elif mode == "random":
        for row, s in enumerate(seeds):
            rng = np.random.default_rng(s if per_seed else split_seed)
            masks[row, rng.permutation(n)[:n_train]] = True
    else:  # validated in scenario.py; kept as a guard for direct callers
        raise ValueError(f"unknown split mode {mode!r}")
    return Split(train=masks, test=~masks, biased=mode == "unshuffled")
