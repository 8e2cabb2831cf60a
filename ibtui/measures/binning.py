"""The binning estimator of I(X;T) and I(T;Y) (Shwartz-Ziv & Tishby 2017; Saxe et al. 2018).

Each unit's activation is put in a bin (a count of equal bins over a range, or a fixed width);
a layer's state T is the tuple of its units' bins. With the measured inputs equiprobable:
I(X;T) = H(T) − H(T|X) and I(T;Y) = H(T) − H(T|Y), all plug-in entropies in bits.
H(T|X) is computed, not assumed: it is 0 exactly when T is a function of the input's identity
(a deterministic network, or the noiseless map of a noisy one) — the engine says which holds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ibtui.measures.discrete import dense_ids, entropy_of_ids, joint_ids, row_keys, rows_per_chunk

@dataclass(frozen=True)
class BinSpec:
    """How a layer is binned: `n_bins` equal bins on [lo, hi], or bins of `width` from lo (if width > 0).

    lo / hi may be tensors [S] for per-seed ranges (activation-aware ranges for ReLU layers).
    Values outside [lo, hi] go to the edge bins when counting over a range.
    """

    n_bins: int = 30
    lo: float | torch.Tensor = -1.0
    hi: float | torch.Tensor = 1.0
    width: float = 0.0


def bin_indices(h: torch.Tensor, spec: BinSpec) -> torch.Tensor:
    """Integer bin index of every activation, [S, N, d] → int64 [S, N, d]."""
    lo = spec.lo if not torch.is_tensor(spec.lo) else spec.lo.reshape(-1, 1, 1)
    if spec.width > 0:  # clamped so that absurdly large activations cannot overflow the int64 cast
        return torch.floor((h - lo) / spec.width).clamp_(-(2.0**61), 2.0**61).to(torch.int64)
    hi = spec.hi if not torch.is_tensor(spec.hi) else spec.hi.reshape(-1, 1, 1)
    width = (hi - lo) / spec.n_bins
    if torch.is_tensor(width):
        width = torch.where(width > 0, width, torch.ones_like(width))  # a constant layer: one bin
    idx = torch.floor((h - lo) / width).to(torch.int64)
    return idx.clamp_(0, spec.n_bins - 1)


@dataclass(frozen=True)
class LabelIds:
    """Labels prepared once for many layers: dense ids [S, N], their count and H(Y) [S]."""

    ids: torch.Tensor
    n_values: int
    entropy: torch.Tensor

    @staticmethod
    def of(labels: torch.Tensor, n_seeds: int) -> "LabelIds":
        ids, count = dense_ids(labels.to(torch.int64).expand(n_seeds, labels.shape[-1]))
        return LabelIds(ids, int(count.max()), entropy_of_ids(ids))


def cell_keys(h: torch.Tensor, spec: BinSpec, *, method: str = "auto", chunk: int | None = None) -> torch.Tensor:
    """One int64 key per row [S, N] naming the row's cell; equal rows of bins ↔ equal keys.

    For bins counted over a range, when n_bins**d < 2**52, the bin indices are packed base n_bins by one
    float64 matmul (exact below 2**53), cheaper than integer packing on the CPU (benchmarks/bench_estimators.py
    times binning per snapshot).
    Otherwise the bin indices, shifted by each seed's smallest, are keyed by `discrete.row_keys`
    (`method`: auto, pack or hash) `chunk` rows at a time (default: a fixed memory budget); bin_indices
    is monotone, so the extent of the indices follows from the extent of h.
    """
    s, n, d = h.shape
    if method != "auto" or spec.width > 0 or d * math.log2(max(spec.n_bins, 2)) > 52:
        lo = bin_indices(h.amin(dim=1, keepdim=True), spec)  # [S, 1, d]
        radix = (bin_indices(h.amax(dim=1, keepdim=True), spec) - lo + 1).amax(dim=0).flatten().tolist()
        rows = rows_per_chunk(s * d * 8 * 4, n, chunk)
        if n == 0:
            return torch.zeros(s, 0, dtype=torch.int64, device=h.device)
        return torch.cat([row_keys(bin_indices(h[:, i:i + rows], spec) - lo, radix, method=method)
                          for i in range(0, n, rows)], dim=1)
    lo = spec.lo if not torch.is_tensor(spec.lo) else spec.lo.reshape(-1, 1, 1)
    hi = spec.hi if not torch.is_tensor(spec.hi) else spec.hi.reshape(-1, 1, 1)
    scale = spec.n_bins / (hi - lo)
    if torch.is_tensor(scale):
        scale = torch.where(torch.isfinite(scale), scale, torch.zeros_like(scale))  # a constant layer: one bin
    idx = ((h - lo) * scale).floor_().clamp_(0, spec.n_bins - 1)
    place = torch.tensor([float(spec.n_bins) ** j for j in range(d)], dtype=torch.float64, device=h.device)
    return torch.matmul(idx.double(), place).long()


def binning_mi(h: torch.Tensor, spec: BinSpec, labels: torch.Tensor | LabelIds | None,
               x_ids: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Binned MI in bits for one layer and all seeds.

    h [S, N, d]: the layer's activations on the N measured inputs (equiprobable).
    labels [N] or [S, N] (or LabelIds prepared once for many layers): class of each input (I(T;Y)
    needs it). x_ids [N] or [S, N]: identity of
    each input, equal for repeated inputs; None means all N inputs are distinct.
    Returns "H(T)", "I(X;T)", "I(T;Y)" and "H(T|X)" (each [S]).
    """
    s, n, _ = h.shape
    t_ids, _ = dense_ids(cell_keys(h, spec))
    h_t = entropy_of_ids(t_ids) + 0.0  # + 0.0 turns -0.0 into 0.0
    out = {"H(T)": h_t}
    if x_ids is None:
        # Distinct inputs: X is the sample index, so H(X, T) = H(X) = log2 N and H(T|X) = 0.
        out["H(T|X)"] = torch.zeros_like(h_t)
        out["I(X;T)"] = h_t
    else:
        x = dense_ids(x_ids.to(torch.int64).expand(s, n))[0]
        h_x = entropy_of_ids(x)
        h_xt = entropy_of_ids(joint_ids(t_ids, x))
        out["H(T|X)"] = h_xt - h_x
        out["I(X;T)"] = h_t + h_x - h_xt
    if labels is not None:
        y = labels if isinstance(labels, LabelIds) else LabelIds.of(labels, s)
        # (T, Y) pairs as t·C + y: exact, and counted by scatter without another sort.
        joint = t_ids * y.n_values + y.ids
        out["I(T;Y)"] = h_t + y.entropy - entropy_of_ids(joint, n_values=n * y.n_values)
    return out
