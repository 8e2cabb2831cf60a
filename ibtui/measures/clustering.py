"""Per-layer clustering measures: how far a layer's representation has collapsed into clusters.

Goldfeld et al. (ICML 2019, papers.md §1.1, §1.6) argue that the compression seen in the information
plane is driven by geometric clustering of same-class representations, and that binning "estimators"
of I(X;T) really measure this clustering.  This module gives ibtui's clustering table those numbers,
as pure functions of a layer's noiseless representation ``h`` [S, N, d] (all seeds at once) and the
labels [N] (int64, shared by all seeds).  Every function returns a tensor [S] in ``h``'s float dtype
on ``h``'s device; a seed whose activations contain NaN/inf gets NaN.

Grid-based measures (cells, H_bin, homogeneity) share one cell-key computation: the grid cell of a
row is ``floor((h - lo) / bin_size)`` and rows are equal iff their keys are equal.  Keys are exact
integer packings when the grid's extent fits in int64, else a 62-bit universal hash (see
:func:`occupied_cells`).  Pairwise measures are chunked to a fixed memory budget.
"""

from __future__ import annotations

import math
import random

import torch
from torch import Tensor

__all__ = [
    "DEFINITIONS",
    "binned_entropy",
    "close_pair_fraction",
    "clustering_measures",
    "cosine_similarity_within_between",
    "occupied_cells",
    "partition_homogeneity",
    "partition_purity",
    "spread_ratio",
]

DEFINITIONS: dict[str, str] = {
    "cells": "occupied cells of a grid of width B (B = 10*beta by default) over the layer's noiseless "
    "representations of the N inputs; N = no clustering, #classes or fewer = collapsed",
    "H_bin": "H(Bin(T)) in bits: entropy of the occupied-cell frequencies, inputs equiprobable "
    "(Goldfeld et al. 2019 clustering measure, bin 10*beta); log2(N) = no clustering",
    "spread_ratio": "mean squared distance of a point to its class centroid / class-size-weighted mean "
    "squared distance of class centroids to the global centroid; near 0 = tight class clusters",
    "close_pairs": "fraction of input pairs i<j with ||h_i - h_j|| < radius (radius = beta, the noise "
    "scale): pairs the noise cannot tell apart",
    "cos_within": "mean cosine similarity over pairs of inputs of the same class (Goldfeld et al. 2019, "
    "MNIST CNN)",
    "cos_between": "mean cosine similarity over pairs of inputs of different classes (Goldfeld et al. 2019, "
    "MNIST CNN)",
    "homogeneity": "1 - H(Y|C)/H(Y) over the grid cells C of width B = I(C;Y)/H(Y): 1 = every cell holds "
    "one class, 0 = cells independent of the label (survey, seed 002)",
}

# Memory budget for one chunk of a pairwise or per-element intermediate, in bytes.
_CHUNK_BYTES = 64 * 2**20
# Mersenne prime 2^31 - 1 for the universal hash; products of two residues stay below 2^62.
_P = 2**31 - 1
_INT64_MAX = 2**63 - 1
# Seed of the hash multipliers: fixed, so keys are the same on every call, thread and device.
_HASH_SEED = 0x1B7_C1A5


# ------------------------------------------------------------------------------------------------
# helpers


def _check(h: Tensor, labels: Tensor | None = None) -> None:
    if h.ndim != 3:
        raise ValueError(f"h must be [S, N, d], got shape {tuple(h.shape)}")
    if not h.is_floating_point():
        raise ValueError(f"h must be a floating tensor, got {h.dtype}")
    if labels is not None and (labels.ndim != 1 or labels.shape[0] != h.shape[1]):
        raise ValueError(f"labels must be [N] with N = {h.shape[1]}, got shape {tuple(labels.shape)}")


def _clean(h: Tensor) -> tuple[Tensor, Tensor]:
    """Return (h with non-finite seeds zeroed, bad[S]); the caller writes NaN for bad seeds."""
    bad = ~torch.isfinite(h).all(dim=2).all(dim=1)
    if bool(bad.any()):
        h = torch.where(bad[:, None, None], torch.zeros((), dtype=h.dtype, device=h.device), h)
    return h, bad


def _finish(x: Tensor, bad: Tensor, dtype: torch.dtype) -> Tensor:
    x = x.to(dtype)
    return torch.where(bad, torch.full_like(x, float("nan")), x)


def _label_index(labels: Tensor, device: torch.device) -> tuple[Tensor, int]:
    """Map arbitrary integer labels to 0..K-1 (present classes only)."""
    uniq, idx = torch.unique(labels.to(device), return_inverse=True)
    return idx.long(), int(uniq.numel())


def _rows_per_chunk(bytes_per_row: int, n: int, chunk: int | None) -> int:
    if chunk is not None:
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
        return chunk
    return max(1, min(n, _CHUNK_BYTES // max(1, bytes_per_row)))


def _hash_multipliers(n: int, device: torch.device) -> Tensor:
    """[2, n] int64 multipliers drawn uniformly from [1, p), the same on every call."""
    rng = random.Random(_HASH_SEED)
    mult = [[rng.randrange(1, _P) for _ in range(n)] for _ in range(2)]
    return torch.tensor(mult, dtype=torch.int64, device=device)


def _cell_keys(h: Tensor, bin_size: float, lo: float | Tensor | None, method: str,
               chunk: int | None) -> Tensor:
    """[S, N] int64 keys, equal iff the rows of h fall in the same grid cell (hash: w.h.p.)."""
    if not bin_size > 0:
        raise ValueError(f"bin_size must be > 0, got {bin_size}")
    if method not in ("auto", "pack", "hash"):
        raise ValueError(f"method must be 'auto', 'pack' or 'hash', got {method!r}")
    S, N, d = h.shape
    lo_t = torch.as_tensor(0.0 if lo is None else lo, dtype=h.dtype, device=h.device)

    def cell(x: Tensor) -> Tensor:
        # clamp so that absurdly large activations cannot overflow the int64 cast
        return torch.floor((x - lo_t) / bin_size).clamp(-(2.0**61), 2.0**61).long()

    # floor is monotone, so the extent of the cell indices follows from the extent of h.
    imin = cell(h.amin(dim=1, keepdim=True))                        # [S, 1, d]
    ranges = (cell(h.amax(dim=1, keepdim=True)) - imin + 1).amax(dim=0).flatten()  # [d]
    ranges_py = [int(r) for r in ranges.tolist()]
    fits = math.prod(ranges_py) - 1 <= _INT64_MAX
    if method == "pack" and not fits:
        raise ValueError("grid too large to pack into int64; use method='hash' or 'auto'")
    use_pack = fits and method != "hash"

    if use_pack:
        strides = [1]
        for r in ranges_py[:-1]:
            strides.append(strides[-1] * r)
        stride_t = torch.tensor(strides, dtype=torch.int64, device=h.device)
    else:
        # Split each index (0 <= idx < range <= 2^63) into base-p limbs so that distinct cells
        # differ in some limb by a nonzero amount in (-p, p), i.e. are distinct mod p.
        n_limbs = 1
        while _P**n_limbs < max(ranges_py):
            n_limbs += 1
        mult = _hash_multipliers(d * n_limbs, h.device).view(2, 1, 1, d, n_limbs)

    rows = _rows_per_chunk(S * d * 8 * (4 if use_pack else 8 * n_limbs), N, chunk)
    out = []
    for i in range(0, N, rows):
        idx = cell(h[:, i:i + rows]) - imin                          # [S, c, d], in [0, range)
        if use_pack:
            out.append((idx * stride_t).sum(dim=-1))
        else:
            limbs = []
            for _ in range(n_limbs):
                limbs.append(idx % _P)
                idx = idx // _P
            lt = torch.stack(limbs, dim=-1)                            # [S, c, d, L]
            hv = ((lt.unsqueeze(0) * mult) % _P).sum(dim=(-1, -2)) % _P  # [2, S, c]
            out.append(hv[0] * _P + hv[1])
    return torch.cat(out, dim=1)


def _runs(sorted_keys: Tensor) -> tuple[Tensor, Tensor]:
    """For keys sorted along dim 1: (run id of each element [S, N], number of runs [S])."""
    new = torch.ones_like(sorted_keys, dtype=torch.bool)
    new[:, 1:] = sorted_keys[:, 1:] != sorted_keys[:, :-1]
    return new.cumsum(dim=1) - 1, new.sum(dim=1)


def _run_counts(run_id: Tensor) -> Tensor:
    """[S, N] int64: count of each run id (zeros after the last run)."""
    return torch.zeros_like(run_id).scatter_add_(1, run_id, torch.ones_like(run_id))


def _entropy_bits(counts: Tensor, n: int) -> Tensor:
    """Plug-in entropy in bits of count rows [S, M] (zeros ignored) with total n, in float64."""
    c = counts.double()
    return math.log2(n) - torch.xlogy(c, c).sum(dim=1) / (n * math.log(2))


def _partition_stats(keys: Tensor, lab: Tensor | None, k: int) -> dict[str, Tensor]:
    """Cells, H(C) and, with labels, H(C,Y) and Σ_c max_y n(c,y) from cell keys [S, N]."""
    S, N = keys.shape
    sk, perm = keys.sort(dim=1)
    rid, n_cells = _runs(sk)
    stats = {"cells": n_cells, "H_C": _entropy_bits(_run_counts(rid), N)}
    if lab is not None:
        joint = rid * k + lab[perm]                                  # < N*k, exact
        sj, _ = joint.sort(dim=1)
        jid, _ = _runs(sj)
        jcnt = _run_counts(jid)
        stats["H_CY"] = _entropy_bits(jcnt, N)
        # cell of each joint run, then the largest class count in each cell
        jcell = torch.zeros_like(jid).scatter_(1, jid, sj // k)
        best = torch.zeros_like(jid).scatter_reduce_(1, jcell, jcnt, reduce="amax")
        stats["majority"] = best.sum(dim=1)
    return stats


def _label_entropy_bits(lab: Tensor, k: int) -> float:
    return float(_entropy_bits(torch.bincount(lab, minlength=k)[None], lab.numel())[0])


# ------------------------------------------------------------------------------------------------
# grid measures


def occupied_cells(h: Tensor, bin_size: float, lo: float | Tensor | None = None, *,
                   method: str = "auto", chunk: int | None = None) -> Tensor:
    """Number of distinct occupied cells of the grid of width ``bin_size``: distinct rows of
    floor((h - lo)/bin_size), per seed.  ``lo`` is the grid origin (scalar or broadcastable to
    [S, 1, d]); None = 0, so cell edges are multiples of bin_size.

    Keys are exact when Π_j range_j ≤ 2^63 (integer packing of the per-seed index offsets).
    Otherwise (``method='hash'`` forces it) each index is split into base-p limbs, p = 2^31−1,
    and hashed by two independent universal hashes Σ_j a_j·x_j mod p with fixed random a_j, giving a
    62-bit key: two distinct cells collide with probability ≤ 1/(p−1)² ≈ 2.2e-19, so the chance of any
    collision among N = 10^4 rows is below N²/2/p² ≈ 1.1e-11 (negligible).
    A cluster count is not given by the papers (papers.md §1.6); this is ibtui's.
    """
    _check(h)
    hc, bad = _clean(h)
    keys = _cell_keys(hc, bin_size, lo, method, chunk)
    return _finish(_partition_stats(keys, None, 1)["cells"], bad, h.dtype)


def binned_entropy(h: Tensor, bin_size: float, lo: float | Tensor | None = None, *,
                   method: str = "auto", chunk: int | None = None) -> Tensor:
    """H(Bin(T)) in bits = −Σ_c p(c) log2 p(c), p(c) = n_c/N, inputs equiprobable: Goldfeld et al.
    2019's clustering measure, with bin_size = 10β in their SZT figure (papers.md §1.6)."""
    _check(h)
    hc, bad = _clean(h)
    keys = _cell_keys(hc, bin_size, lo, method, chunk)
    return _finish(_partition_stats(keys, None, 1)["H_C"], bad, h.dtype)


def partition_homogeneity(h: Tensor, labels: Tensor, bin_size: float,
                          lo: float | Tensor | None = None, *, method: str = "auto",
                          chunk: int | None = None) -> Tensor:
    """Class homogeneity of the grid cells C of width ``bin_size``: 1 − H(Y|C)/H(Y) = I(C;Y)/H(Y).

    The survey (seed 002, papers.md §5) asks whether a layer's ε-partition is homogeneous in the
    label.  With hard labels we use the normalised conditional entropy rather than the weighted
    purity (:func:`partition_purity`) because it is chance-corrected: 0 for any partition independent
    of the label whatever the class balance (purity's floor is max_y p(y), which changes with the
    data set), 1 iff every cell holds one class; and it is the binned I(T;Y) over H(Y), in bits like
    the rest of the information plane.  A single class (H(Y) = 0) gives 1.  Note that a partition
    with one input per cell is trivially homogeneous; read it next to ``cells``.
    """
    _check(h, labels)
    hc, bad = _clean(h)
    lab, k = _label_index(labels, h.device)
    st = _partition_stats(_cell_keys(hc, bin_size, lo, method, chunk), lab, k)
    return _finish(_homogeneity(st, _label_entropy_bits(lab, k)), bad, h.dtype)


def _homogeneity(st: dict[str, Tensor], h_y: float) -> Tensor:
    if h_y <= 0:
        return torch.ones_like(st["H_C"])
    h_y_given_c = (st["H_CY"] - st["H_C"]).clamp_min(0.0)
    return (1.0 - h_y_given_c / h_y).clamp(0.0, 1.0)


def partition_purity(h: Tensor, labels: Tensor, bin_size: float,
                     lo: float | Tensor | None = None, *, method: str = "auto",
                     chunk: int | None = None) -> Tensor:
    """Weighted purity of the grid cells: Σ_c p(c) max_y p(y|c) = (1/N) Σ_c max_y n(c,y).
    1 = every cell holds one class; a single cell gives max_y p(y).  (Alternative to
    :func:`partition_homogeneity`; survey, papers.md §5.)"""
    _check(h, labels)
    hc, bad = _clean(h)
    lab, k = _label_index(labels, h.device)
    st = _partition_stats(_cell_keys(hc, bin_size, lo, method, chunk), lab, k)
    return _finish(st["majority"].double() / h.shape[1], bad, h.dtype)


# ------------------------------------------------------------------------------------------------
# geometric measures


def spread_ratio(h: Tensor, labels: Tensor) -> Tensor:
    """Within/between spread: W / B with
    W = (1/N) Σ_i ‖h_i − μ_{y_i}‖²  (mean squared distance to the own class centroid) and
    B = Σ_c (n_c/N) ‖μ_c − μ‖²     (class-size-weighted squared distance of centroids to the global
    centroid μ).  W + B is the total variance (1/N) Σ_i ‖h_i − μ‖².  Near 0 = tight, separated class
    clusters; labels independent of h give E ≈ (N−K)/(K−1).  B = 0 gives inf (nan if W = 0 too).
    ibtui's definition (Fisher-style), not from the papers."""
    _check(h, labels)
    hc, bad = _clean(h)
    lab, k = _label_index(labels, h.device)
    S, N, d = hc.shape
    x = hc - hc.mean(dim=1, keepdim=True)                            # global centroid at 0
    n_c = torch.bincount(lab, minlength=k).to(h.dtype)               # [K]
    mu = torch.zeros(S, k, d, dtype=h.dtype, device=h.device).index_add_(1, lab, x) / n_c[:, None]
    w = (x - mu[:, lab]).pow(2).sum(dim=-1).mean(dim=1)
    b = (mu.pow(2).sum(dim=-1) * n_c).sum(dim=1) / N
    return _finish(w / b, bad, h.dtype)


def close_pair_fraction(h: Tensor, radius: float, *, chunk: int | None = None) -> Tensor:
    """Fraction of unordered pairs i<j with ‖h_i − h_j‖ < radius, i.e.
    #{i<j : ‖h_i−h_j‖ < r} / (N(N−1)/2).  With radius = β these are inputs whose noisy
    representations overlap, the mechanism of compression in a noisy net (papers.md §1.1).
    Exact distances (no ‖a‖²+‖b‖²−2ab cancellation), chunked over rows; NaN if N < 2.

    Pruning: rows are sorted by the coordinate x of largest variance (per seed); since
    |x_i − x_j| ≤ ‖h_i − h_j‖, a row chunk only needs the columns up to the last j with
    x_j < x_i + radius.  Spread-out data cost ~N·chunk distances; fully clustered data N²/2."""
    _check(h)
    hc, bad = _clean(h)
    S, N, d = hc.shape
    count = torch.zeros(S, dtype=torch.int64, device=h.device)
    if N >= 2 and radius > 0:
        axis = hc.var(dim=1).argmax(dim=1)                                # [S]
        x = hc.gather(2, axis.view(S, 1, 1).expand(S, N, 1)).squeeze(2)  # [S, N]
        xs, perm = x.sort(dim=1)
        hs = hc.gather(1, perm.unsqueeze(2).expand(S, N, d))
        # pad the window so rounding in x_i + r can only add candidates, never drop one
        pad = radius * 1e-4 + 8 * torch.finfo(hc.dtype).eps * float(xs.abs().max())
        upper = torch.searchsorted(xs, (xs + (radius + pad)).contiguous()).amax(dim=0).tolist()
        rows = _rows_per_chunk(S * N * (hc.element_size() + 1), N, chunk)
        if chunk is None:
            rows = min(rows, 256)
        for i in range(0, N, rows):
            c = min(rows, N - i)
            end = max(int(upper[i + c - 1]), i + c)
            # distances from rows i..i+c to rows i <= j < end (upper triangle + diagonal block)
            dist = torch.cdist(hs[:, i:i + c], hs[:, i:end],
                               compute_mode="donot_use_mm_for_euclid_dist")
            close = dist < radius                                           # [S, c, end - i]
            close[:, :, :c] &= torch.ones(c, c, dtype=torch.bool, device=h.device).triu(1)
            count += torch.count_nonzero(close, dim=(1, 2))
    pairs = N * (N - 1) / 2
    frac = count.double() / pairs if pairs > 0 else torch.full((S,), float("nan"), device=h.device)
    return _finish(frac, bad, h.dtype)


def cosine_similarity_within_between(h: Tensor, labels: Tensor, *,
                                     chunk: int | None = None) -> tuple[Tensor, Tensor]:
    """(mean cosine similarity over pairs i≠j of the same class, over pairs of different classes),
    as in Goldfeld et al.'s MNIST CNN analysis (papers.md §1.6).  With u_i = h_i/‖h_i‖ (u_i = 0 for
    h_i = 0, torch's convention, so such pairs count as similarity 0), per class c:
    Σ_{i≠j∈c} u_i·u_j = ‖Σ_{i∈c} u_i‖² − Σ_{i∈c} ‖u_i‖²; pairs across classes are the total minus
    the within part.  Means are over pairs (N² − Σ n_c² between, Σ n_c(n_c−1) within; NaN if none).
    O(N d), sums in float64, chunked over rows."""
    _check(h, labels)
    hc, bad = _clean(h)
    lab, k = _label_index(labels, h.device)
    S, N, d = hc.shape
    u_sum = torch.zeros(S, k, d, dtype=torch.float64, device=h.device)
    q_sum = torch.zeros(S, k, dtype=torch.float64, device=h.device)
    rows = _rows_per_chunk(S * d * 16, N, chunk)
    for i in range(0, N, rows):
        u = torch.nn.functional.normalize(hc[:, i:i + rows], dim=-1).double()
        li = lab[i:i + rows]
        u_sum.index_add_(1, li, u)
        q_sum.index_add_(1, li, u.pow(2).sum(dim=-1))
    n_c = torch.bincount(lab, minlength=k).double()
    within = (u_sum.pow(2).sum(dim=-1) - q_sum).sum(dim=1)
    total = u_sum.sum(dim=1).pow(2).sum(dim=-1) - q_sum.sum(dim=1)
    n_within = float((n_c * (n_c - 1)).sum())
    n_between = float(N * N - (n_c * n_c).sum())
    nan = torch.full_like(within, float("nan"))
    cos_w = within / n_within if n_within > 0 else nan
    cos_b = (total - within) / n_between if n_between > 0 else nan
    return _finish(cos_w, bad, h.dtype), _finish(cos_b, bad, h.dtype)


# ------------------------------------------------------------------------------------------------


def clustering_measures(h: Tensor, labels: Tensor, bin_size: float, radius: float,
                        lo: float | Tensor | None = None) -> dict[str, Tensor]:
    """All measures of :data:`DEFINITIONS` for one layer, keyed by their export names, each [S].
    Typical settings: bin_size = 10β (Goldfeld et al.), radius = β.  Cell keys are computed once."""
    _check(h, labels)
    hc, bad = _clean(h)
    lab, k = _label_index(labels, h.device)
    st = _partition_stats(_cell_keys(hc, bin_size, lo, "auto", None), lab, k)
    cos_w, cos_b = cosine_similarity_within_between(h, labels)
    return {
        "cells": _finish(st["cells"], bad, h.dtype),
        "H_bin": _finish(st["H_C"], bad, h.dtype),
        "spread_ratio": spread_ratio(h, labels),
        "close_pairs": close_pair_fraction(h, radius),
        "cos_within": cos_w,
        "cos_between": cos_b,
        "homogeneity": _finish(_homogeneity(st, _label_entropy_bits(lab, k)), bad, h.dtype),
    }
