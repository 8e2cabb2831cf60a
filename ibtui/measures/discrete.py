"""Entropies of discrete labels, per seed, by sorting: the shared core of every plug-in estimate.

Rows of a layer's binned representation become one integer key each; equal keys are equal cells.
Sorting the keys of every seed at once gives cell sizes without a Python loop over samples or seeds.
"""
from __future__ import annotations

import torch

_LOG2 = torch.log(torch.tensor(2.0, dtype=torch.float64)).item()


def dense_ids(keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Relabel keys [S, N] as dense ids 0..k-1 per seed (same key → same id); also return k [S].

    Non-negative keys small enough to carry the seed's row in their high bits are sorted as one flat
    vector (several times faster on the CPU than a row-wise sort); others row by row.
    """
    s, n = keys.shape
    row_bits = max(1, (s - 1).bit_length())
    if s > 1 and int(keys.min()) >= 0 and int(keys.max()) < (1 << (62 - row_bits)):
        rows = torch.arange(s, device=keys.device, dtype=torch.int64)[:, None]
        flat = (keys + (rows << (62 - row_bits))).flatten()
        sorted_flat, order_flat = torch.sort(flat)
        sorted_keys = sorted_flat.view(s, n)
        order = order_flat.view(s, n) - rows * n
    else:
        sorted_keys, order = torch.sort(keys, dim=1)
    new = torch.ones_like(sorted_keys, dtype=torch.int64)
    new[:, 1:] = (sorted_keys[:, 1:] != sorted_keys[:, :-1]).to(torch.int64)
    group = torch.cumsum(new, dim=1) - 1
    ids = torch.empty_like(group).scatter_(1, order, group)
    return ids, group[:, -1] + 1


def entropy_of_ids(ids: torch.Tensor, weights: torch.Tensor | None = None, n_values: int | None = None
                   ) -> torch.Tensor:
    """Entropy in bits [S] of the empirical distribution of ids [S, N] (values in 0..n_values-1, default N-1).

    `weights` [S, N] (non-negative) restricts / weights the samples, e.g. a mask of the points
    measured for each seed; by default every sample counts once.
    """
    s, n = ids.shape
    w = torch.ones(s, n, dtype=torch.float64, device=ids.device) if weights is None else weights.to(torch.float64)
    counts = torch.zeros(s, n_values or n, dtype=torch.float64, device=ids.device).scatter_add_(1, ids, w)
    p = counts.div_(w.sum(dim=1, keepdim=True))
    return (-torch.special.xlogy(p, p).sum(dim=1) / _LOG2).to(torch.float32)  # xlogy: 0·log 0 = 0


def joint_ids(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Ids of the pair (a, b) for dense ids a, b [S, N] (both < N), exact in int64."""
    n = a.shape[1]
    return dense_ids(a * n + b)[0]
