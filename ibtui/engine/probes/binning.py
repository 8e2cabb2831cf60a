"""Binned I(X;T), I(T;Y) of every layer (Shwartz-Ziv & Tishby 2017): the probe and its bin rules."""
from __future__ import annotations

import torch

from ibtui import quantities as Q
from ibtui.engine.context import RunContext
from ibtui.engine.probes.base import Probe
from ibtui.engine.snapshot import Snapshot, Values
from ibtui.measures.binning import BinSpec, LabelIds, binning_mi


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


class BinningProbe(Probe):
    """Binned I(X;T), I(T;Y) of every layer on the snapshot's points."""

    detached = True

    def __init__(self, ctx: RunContext):
        settings = ctx.sc.measure.binning
        self.settings = settings
        self.estimators = {binning_label(settings): binning_description(settings, ctx.sc.model.activation)}

    def at_snapshot(self, snap: Snapshot) -> Values:
        return binning_values(snap.layers, snap.activations, snap.labels, self.settings, x_ids=snap.x_ids)
