"""What is measured at a snapshot: loss and accuracy, and MI of every layer by every enabled estimator.

Everything stays on the device as a dict {(layer, quantity, estimator): Tensor[S]}; the engine copies
it to the host once per snapshot and turns it into records.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ibtui import quantities as Q
from ibtui.data.sampling import fixed_subset
from ibtui.measures.binning import BinSpec, LabelIds, binning_mi

Values = dict[tuple[str, str, str], torch.Tensor]


def binning_label(settings) -> str:
    """The estimator column for binning: 'bin30' (count over a range) or 'binw0.07' (fixed width)."""
    return f"binw{settings.width:g}" if settings.width > 0 else f"bin{settings.bins}"


def binning_description(settings, activation: str) -> str:
    if settings.width > 0:
        return f"bins of width {settings.width:g}"
    if isinstance(settings.range, str):
        return f"{settings.bins} equal bins, activation-aware range ({activation})"
    lo, hi = settings.range
    return f"{settings.bins} equal bins on [{lo:g}, {hi:g}]"


def layer_bin_spec(settings, h: torch.Tensor, activation: str) -> BinSpec:
    """Bins for one layer: the scenario's fixed range, or an activation-aware one when range = "auto"."""
    if settings.width > 0:
        lo = settings.range[0] if not isinstance(settings.range, str) else 0.0
        return BinSpec(width=settings.width, lo=lo)
    if not isinstance(settings.range, str):
        return BinSpec(n_bins=settings.bins, lo=settings.range[0], hi=settings.range[1])
    if activation == "tanh":
        return BinSpec(n_bins=settings.bins, lo=-1.0, hi=1.0)
    if activation in ("sigmoid", "softmax"):
        return BinSpec(n_bins=settings.bins, lo=0.0, hi=1.0)
    hi = h.amax(dim=(1, 2))
    lo = torch.zeros_like(hi) if activation == "relu" else h.amin(dim=(1, 2))
    return BinSpec(n_bins=settings.bins, lo=lo, hi=hi)


def pointwise_cross_entropy(logits_t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy [S, N] (nats) from feature-major logits [S, C, N] and targets [N] or [S, N].

    Two classes use the closed form softplus(±(z1 − z0)): the same value, far cheaper than a
    log-softmax over a dimension of size 2.
    """
    y = y.expand(logits_t.shape[0], -1)
    if logits_t.shape[1] == 2:
        diff = logits_t[:, 1, :] - logits_t[:, 0, :]
        return F.softplus((1 - 2 * y).to(diff.dtype) * diff)
    return F.cross_entropy(logits_t, y, reduction="none")


def loss_and_accuracy(logits_t: torch.Tensor, y: torch.Tensor, train: torch.Tensor, test: torch.Tensor) -> Values:
    """Mean cross-entropy (nats) and accuracy per seed on its train and test points; logits_t [S, C, N]."""
    ce = pointwise_cross_entropy(logits_t, y)
    # argmax over a size-2 dimension is slow on the CPU; comparing the two logits is the same decision
    pred = (logits_t[:, 1, :] > logits_t[:, 0, :]).long() if logits_t.shape[1] == 2 else logits_t.argmax(dim=1)
    correct = (pred == y).to(ce.dtype)
    out: Values = {}
    for mask, loss_q, acc_q in ((train, Q.LOSS_TRAIN, Q.ACC_TRAIN), (test, Q.LOSS_TEST, Q.ACC_TEST)):
        m = mask.to(ce.dtype)
        count = m.sum(dim=1).clamp_min(1.0)
        empty = m.sum(dim=1) == 0
        nan = torch.full_like(count, float("nan"))
        out[("", loss_q, "")] = torch.where(empty, nan, (ce * m).sum(dim=1) / count)
        out[("", acc_q, "")] = torch.where(empty, nan, (correct * m).sum(dim=1) / count)
    return out


def mi_points(mode: str, train: torch.Tensor, test: torch.Tensor, subset: int = 0) -> torch.Tensor | None:
    """Indices [S, n] of the points MI is measured on, or None for all points (shared by every seed).

    `subset` > 0 keeps a fixed random subset of that many of them (the same positions for every seed).
    """
    s, n = train.shape
    if mode == "all":
        idx = None if not subset or subset >= n else torch.arange(n, device=train.device).expand(s, n)
    else:
        mask = train if mode == "train" else test
        idx = mask.nonzero()[:, 1].reshape(s, -1)
    if idx is None or not subset or subset >= idx.shape[1]:
        return idx
    keep = fixed_subset(idx.shape[1], subset, seed=2024)
    return idx[:, keep.to(idx.device)]


def take(h: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
    """Rows idx [S, n] of h [S, N, d] per seed (all rows when idx is None)."""
    if idx is None:
        return h
    return h.gather(1, idx.unsqueeze(-1).expand(-1, -1, h.shape[-1]))


def binning_values(layers: list[torch.Tensor], activations: list[str], labels: torch.Tensor, settings,
                   x_ids: torch.Tensor | None) -> Values:
    """Binned I(X;T) and I(T;Y) of every layer.

    layers: [S, n, d_l] on the measured points; labels and x_ids (input identities; None when all
    measured inputs are distinct) are [S, n] or [n].
    """
    label = binning_label(settings)
    out: Values = {}
    prepared = LabelIds.of(labels, layers[0].shape[0])  # once for all layers
    for index, (h, act) in enumerate(zip(layers, activations), start=1):
        mi = binning_mi(h, layer_bin_spec(settings, h, act), prepared, x_ids=x_ids)
        out[(str(index), Q.MI_XT, label)] = mi["I(X;T)"]
        out[(str(index), Q.MI_TY, label)] = mi["I(T;Y)"]
    return out
