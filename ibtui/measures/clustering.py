"""Per-layer clustering measures: how far a layer's representation has collapsed into clusters.

Goldfeld et al. (ICML 2019, the noisy-network framework and its SZT experiments) argue that the compression seen in
the information plane is driven by geometric clustering of same-class representations, and that binning
"estimators" of I(X;T) really measure this clustering. This module gives ibtui's clustering table those
numbers, as pure functions of a layer's noiseless representation ``h`` [S, N, d] (all seeds at once) and
the labels [N] (int64, shared by all seeds). Every function returns a tensor [S] in ``h``'s float dtype
on ``h``'s device; a seed whose activations contain NaN/inf gets NaN.

The grid measures are binning at width B (`ibtui.measures.binning`, on the partition core of
`ibtui.measures.discrete`): the grid cell of a row is ``floor((h - lo) / B)``, ``cells`` counts the
occupied cells, ``H_bin`` is the binned H(T), and ``homogeneity`` is the binned I(T;Y)/H(Y).
Pairwise measures (close pairs, cosines) and the spread ratio are this module's own, chunked to a fixed
memory budget.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ibtui import quantities as Q
from ibtui.measures.binning import BinSpec, cell_keys
from ibtui.measures.discrete import dense_ids, entropy_of_ids, joint_ids, rows_per_chunk

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

DEFINITIONS: dict[str, str] = {name: Q.definition(name) for name in Q.CLUSTERING}  # one registry

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
    """Map arbitrary integer labels [N] to dense ids 0..K-1 (present classes only)."""
    ids, k = dense_ids(labels.to(device=device, dtype=torch.int64)[None])
    return ids[0], int(k[0])


def _cell_ids(h: Tensor, bin_size: float, lo: float | Tensor | None, method: str,
              chunk: int | None) -> tuple[Tensor, Tensor]:
    """(dense cell id of every row [S, N], occupied cells [S]) of the grid of width bin_size from lo:
    binning at width B (`binning.cell_keys`, keys exact or hashed by `discrete.row_keys`)."""
    if not bin_size > 0:
        raise ValueError(f"bin_size must be > 0, got {bin_size}")
    if lo is not None:  # a grid origin per seed or per unit, broadcast against [S, N, d]
        h = h - torch.as_tensor(lo, dtype=h.dtype, device=h.device)
    return dense_ids(cell_keys(h, BinSpec(width=bin_size, lo=0.0), method=method, chunk=chunk))


def _partition_stats(t_ids: Tensor, n_cells: Tensor, lab: Tensor | None) -> dict[str, Tensor]:
    """Cells, H(C) and, with labels [N], H(C,Y) (bits, float64) and Σ_c max_y n(c,y), from cell ids [S, N]."""
    stats = {"cells": n_cells, "H_C": entropy_of_ids(t_ids, dtype=torch.float64)}
    if lab is not None:
        j_ids = joint_ids(t_ids, lab.expand_as(t_ids))
        stats["H_CY"] = entropy_of_ids(j_ids, dtype=torch.float64)
        # cell of each joint value, then the largest class count in each cell
        j_cnt = torch.zeros_like(j_ids).scatter_add_(1, j_ids, torch.ones_like(j_ids))
        j_cell = torch.zeros_like(j_ids).scatter_(1, j_ids, t_ids)
        best = torch.zeros_like(j_ids).scatter_reduce_(1, j_cell, j_cnt, reduce="amax")
        stats["majority"] = best.sum(dim=1)
    return stats


def _label_entropy_bits(lab: Tensor) -> float:
    return float(entropy_of_ids(lab[None], dtype=torch.float64)[0])


# ------------------------------------------------------------------------------------------------
# grid measures


def occupied_cells(h: Tensor, bin_size: float, lo: float | Tensor | None = None, *,
                   method: str = "auto", chunk: int | None = None) -> Tensor:
    """Number of distinct occupied cells of the grid of width ``bin_size``: distinct rows of
    floor((h - lo)/bin_size), per seed.  ``lo`` is the grid origin (scalar or broadcastable to
    [S, 1, d]); None = 0, so cell edges are multiples of bin_size.

    Keys are exact when Π_j range_j ≤ 2^63 (integer packing of the per-seed index offsets); otherwise
    (``method='hash'`` forces it) they are the row hash of `discrete.row_keys` (collisions negligible).
    Goldfeld et al. (2019) give no cluster count; this one is ibtui's.
    """
    _check(h)
    hc, bad = _clean(h)
    _, n_cells = _cell_ids(hc, bin_size, lo, method, chunk)
    return _finish(n_cells, bad, h.dtype)


def binned_entropy(h: Tensor, bin_size: float, lo: float | Tensor | None = None, *,
                   method: str = "auto", chunk: int | None = None) -> Tensor:
    """H(Bin(T)) in bits = −Σ_c p(c) log2 p(c), p(c) = n_c/N, inputs equiprobable: Goldfeld et al.
    2019's clustering measure, with bin_size = 10β in their SZT figure: the binned H(T) at width B."""
    _check(h)
    hc, bad = _clean(h)
    t_ids, n_cells = _cell_ids(hc, bin_size, lo, method, chunk)
    return _finish(_partition_stats(t_ids, n_cells, None)["H_C"], bad, h.dtype)


def partition_homogeneity(h: Tensor, labels: Tensor, bin_size: float,
                          lo: float | Tensor | None = None, *, method: str = "auto",
                          chunk: int | None = None) -> Tensor:
    """Class homogeneity of the grid cells C of width ``bin_size``: 1 − H(Y|C)/H(Y) = I(C;Y)/H(Y).

    The survey "Information Theory for Deep Learning" asks whether a layer's ε-partition is homogeneous in the
    label.  With hard labels we use the normalised conditional entropy rather than the weighted
    purity (:func:`partition_purity`) because it is chance-corrected: 0 for any partition independent
    of the label whatever the class balance (purity's floor is max_y p(y), which changes with the
    data set), 1 iff every cell holds one class; and it is the binned I(T;Y) over H(Y), in bits like
    the rest of the information plane.  A single class (H(Y) = 0) gives 1.  Note that a partition
    with one input per cell is trivially homogeneous; read it next to ``cells``.
    """
    _check(h, labels)
    hc, bad = _clean(h)
    lab, _ = _label_index(labels, h.device)
    st = _partition_stats(*_cell_ids(hc, bin_size, lo, method, chunk), lab)
    return _finish(_homogeneity(st, _label_entropy_bits(lab)), bad, h.dtype)


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
    :func:`partition_homogeneity`, for the same question of the survey.)"""
    _check(h, labels)
    hc, bad = _clean(h)
    lab, _ = _label_index(labels, h.device)
    st = _partition_stats(*_cell_ids(hc, bin_size, lo, method, chunk), lab)
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
    representations overlap, the mechanism of compression in a noisy net (Goldfeld et al. 2019).
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
        rows = rows_per_chunk(S * N * (hc.element_size() + 1), N, chunk)
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
    as in Goldfeld et al.'s (2019) MNIST CNN analysis.  With u_i = h_i/‖h_i‖ (u_i = 0 for
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
    rows = rows_per_chunk(S * d * 16, N, chunk)
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
    lab, _ = _label_index(labels, h.device)
    st = _partition_stats(*_cell_ids(hc, bin_size, lo, "auto", None), lab)
    cos_w, cos_b = cosine_similarity_within_between(h, labels)
    return {
        "cells": _finish(st["cells"], bad, h.dtype),
        "H_bin": _finish(st["H_C"], bad, h.dtype),
        "spread_ratio": spread_ratio(h, labels),
        "close_pairs": close_pair_fraction(h, radius),
        "cos_within": cos_w,
        "cos_between": cos_b,
        "homogeneity": _finish(_homogeneity(st, _label_entropy_bits(lab)), bad, h.dtype),
    }
