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

from ibtui.measures.discrete import dense_ids, entropy_of_ids, joint_ids

# Random odd 63-bit multipliers for hashing rows too wide to pack exactly (fixed: results reproducible).
_HASH_SEED = 0x1B7


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
    if spec.width > 0:
        return torch.floor((h - lo) / spec.width).to(torch.int64)
    hi = spec.hi if not torch.is_tensor(spec.hi) else spec.hi.reshape(-1, 1, 1)
    width = (hi - lo) / spec.n_bins
    if torch.is_tensor(width):
        width = torch.where(width > 0, width, torch.ones_like(width))  # a constant layer: one bin
    idx = torch.floor((h - lo) / width).to(torch.int64)
    return idx.clamp_(0, spec.n_bins - 1)


def row_keys(idx: torch.Tensor) -> torch.Tensor:
    """One int64 key per row of bin indices [S, N, d] → [S, N]; equal rows ↔ equal keys.

    Exact mixed-radix packing when the index ranges fit in 62 bits; otherwise a sum of indices
    times random 64-bit multipliers (wrap-around arithmetic): two different rows collide with
    probability about 2**-64 per pair, negligible for N ≤ 10**6.
    """
    lo = idx.amin(dim=(0, 1), keepdim=True)
    shifted = idx - lo
    radix = shifted.amax(dim=(0, 1)) + 1  # [d]
    bits = torch.log2(radix.to(torch.float64)).sum().item()
    if bits <= 62:
        place = torch.cumprod(torch.cat([radix.new_ones(1), radix[:-1]]), dim=0)
        return (shifted * place).sum(dim=-1)
    g = torch.Generator().manual_seed(_HASH_SEED)
    mult = torch.randint(1, 2**62, (idx.shape[-1],), generator=g, dtype=torch.int64).to(idx.device) * 2 + 1
    return (shifted * mult).sum(dim=-1)


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


def cell_keys(h: torch.Tensor, spec: BinSpec) -> torch.Tensor:
    """One int64 key per row [S, N] naming the row's cell; equal rows of bins ↔ equal keys.

    For bins counted over a range, when n_bins**d < 2**52, the bin indices are packed base n_bins by one
    float64 matmul (exact below 2**53): about ten times faster than integer packing on the CPU.
    """
    d = h.shape[-1]
    if spec.width > 0 or d * math.log2(max(spec.n_bins, 2)) > 52:
        return row_keys(bin_indices(h, spec))
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
