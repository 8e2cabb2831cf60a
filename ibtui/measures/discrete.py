"""Partitions and their entropies, per seed, by sorting: the shared core of every plug-in estimate.

Rows of a layer's binned representation become one integer key each (`row_keys`: exact packing when
the grid fits in 63 bits, else the one row hash of ibtui); equal keys are equal cells. Sorting the keys
of every seed at once gives cell sizes without a Python loop over samples or seeds. Binning
(`ibtui.measures.binning`) and the clustering table (`ibtui.measures.clustering`) are built on this.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Sequence

import torch

LN2 = math.log(2.0)  # nats per bit: every estimate that works in nats divides by it once

# Seed of the random odd multipliers of the row hash (fixed: keys are the same on every call and device).
HASH_SEED = 0x1B7
_INT64_MAX = 2**63 - 1
# Memory budget for one chunk of a per-row intermediate, in bytes.
CHUNK_BYTES = 64 * 2**20


def rows_per_chunk(bytes_per_row: int, n: int, chunk: int | None = None) -> int:
    """Rows per chunk: `chunk` if given (≥ 1), else as many as fit in CHUNK_BYTES (at least 1, at most n)."""
    if chunk is not None:
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
        return chunk
    return max(1, min(n, CHUNK_BYTES // max(1, bytes_per_row)))


@lru_cache(maxsize=64)
def _multipliers(d: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(HASH_SEED)
    return torch.randint(1, 2**62, (d,), generator=g, dtype=torch.int64) * 2 + 1


def hash_multipliers(d: int, device: torch.device | str | None = None) -> torch.Tensor:
    """d random odd 63-bit int64 multipliers, the same on every call (drawn from HASH_SEED)."""
    return _multipliers(d).to(device)


def row_keys(idx: torch.Tensor, radix: Sequence[int] | None = None, *, method: str = "auto") -> torch.Tensor:
    """One int64 key per row of integer indices idx [..., d] → [...]; equal rows ↔ equal keys.

    "pack": exact mixed-radix packing, for idx[..., j] in [0, radix[j]) with Π radix ≤ 2^63 (ValueError
    otherwise). Without `radix`, idx is first shifted by its minimum per column over all rows and the
    radix read off it; a caller that keys rows chunk by chunk passes one radix (and shift) for all chunks.
    "hash": Σ_j a_j·idx_j in wrap-around int64 arithmetic with the fixed random odd multipliers a_j:
    two different rows collide with probability about 2^-63 per pair when their index differences are
    small (at most 2^-(63−v) when every difference is a multiple of 2^v), negligible for N ≤ 10^6.
    "auto": pack when the grid fits, else hash.
    """
    if method not in ("auto", "pack", "hash"):
        raise ValueError(f"method must be 'auto', 'pack' or 'hash', got {method!r}")
    d = idx.shape[-1]
    if method != "hash":
        if radix is None:
            rows = tuple(range(idx.dim() - 1))
            idx = idx - idx.amin(dim=rows, keepdim=True)
            radix = (idx.amax(dim=rows) + 1).tolist() if idx.numel() else [1] * d
        radix = [int(r) for r in radix]
        fits = all(r >= 1 for r in radix) and math.prod(radix) - 1 <= _INT64_MAX
        if method == "pack" and not fits:
            raise ValueError("grid too large to pack into int64; use method='hash' or 'auto'")
        if fits:
            strides = [1]
            for r in radix[:-1]:
                strides.append(strides[-1] * r)
            return (idx * torch.tensor(strides, dtype=torch.int64, device=idx.device)).sum(dim=-1)
    return (idx * hash_multipliers(d, idx.device)).sum(dim=-1)


def dense_ids(keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Relabel keys [S, N] as dense ids 0..k-1 per seed (same key → same id, ids in key order); also k [S].

    Non-negative keys small enough to carry the seed's row in their high bits are sorted as one flat
    vector (cheaper on the CPU than a row-wise sort; benchmarks/bench_estimators.py times binning); others
    row by row.
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


def entropy_of_ids(ids: torch.Tensor, weights: torch.Tensor | None = None, n_values: int | None = None,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Entropy in bits [S] of the empirical distribution of ids [S, N] (values in 0..n_values-1, default N-1).

    `weights` [S, N] (non-negative) restricts / weights the samples, e.g. a mask of the points
    measured for each seed; by default every sample counts once. Computed in float64, returned as `dtype`.
    """
    s, n = ids.shape
    w = torch.ones(s, n, dtype=torch.float64, device=ids.device) if weights is None else weights.to(torch.float64)
    counts = torch.zeros(s, n_values or n, dtype=torch.float64, device=ids.device).scatter_add_(1, ids, w)
    p = counts.div_(w.sum(dim=1, keepdim=True))
    return (-torch.special.xlogy(p, p).sum(dim=1) / LN2).to(dtype)  # xlogy: 0·log 0 = 0


def joint_ids(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Dense ids of the pair (a, b) for dense ids a, b [S, N] (both < N), exact in int64."""
    n = a.shape[1]
    return dense_ids(a * n + b)[0]
