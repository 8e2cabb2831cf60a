"""Kolchinsky–Tracey KDE bounds on I(X;T), I(T;Y) of every layer (Saxe et al. 2018)."""
from __future__ import annotations

import torch

from ibtui import quantities as Q
from ibtui.compiled import NO_COMPILER
from ibtui.engine.context import RunContext
from ibtui.engine.probes.base import Probe, shared_labels, per_labels, subset_of
from ibtui.engine.snapshot import Snapshot, Values
from ibtui.measures import native
from ibtui.measures.kde import attention_agrees, kde_mi, kde_mi_attention, kde_mi_tiled
from ibtui.measures.kernel_tiles import TRUNCATION_NATS

# On a CPU, layers up to this width are summed in tiles over near pairs (`kde_mi_tiled`), exact to ~2e-6 nats.
# Measured on a 2-core CPU, 1 thread (docs/PERFORMANCE.md), against the fused attention kernel: with the compiled
# tile kernel 7–12× faster at SZT's widths (all 4096 points, σ² = 1e-3) and 4–16× at MNIST's (10,000 points,
# σ² = 0.1, 10–500 units); with PyTorch's tile sums (no C compiler) 2–3× and 1.0–1.7×. The tile boxes cost a
# PyTorch operation a coordinate, so wider layers (not measured) and GPUs keep the attention kernel.
TILED_MAX_WIDTH = 512


class KdeProbe(Probe):
    """Kolchinsky–Tracey KDE upper and lower bounds of every layer (Saxe et al. 2018).

    On a CPU, layers up to TILED_MAX_WIDTH wide are summed over near pairs in tiles (`kde_mi_tiled`). The
    others go through the fused attention kernel (`kde_mi_attention`) when a start-up check finds it accurate
    on the device; otherwise one pairwise-sum pass per layer (`kde_mi`).
    """

    detached = True

    def __init__(self, ctx: RunContext):
        self.settings = ctx.sc.measure.kde
        where = f"on {self.settings.points} of the MI points" if self.settings.points else "on all MI points"
        self.tiled = ctx.device.type == "cpu"
        wants_compiled = self.tiled and self.settings.precision != "float64"  # the kernel sums float32 only
        compiled = wants_compiled and native.tile_sums() is not None
        code = "compiled kernel" if compiled else "PyTorch"
        how = (f"over near pairs in tiles up to {TILED_MAX_WIDTH} units wide ({code}; skipped pairs ≤ "
               f"{TRUNCATION_NATS:g} nats a log-sum)" if self.tiled else "by fused attention")
        desc = (f"pairwise-distance bound, noise variance σ² = {self.settings.noise_variance:g}, {where}, "
                f"{self.settings.precision} sums {how}")
        self.estimators = {"kde_upper": "KDE upper (KL) " + desc, "kde_lower": "KDE lower (Bhattacharyya) " + desc}
        self.fused = attention_agrees(ctx.device, self.settings.noise_variance)
        notes = []
        if not self.fused:
            notes.append(f"kde: the fused attention kernel is not accurate on {ctx.device} (start-up check); "
                         f"pairwise sums are used instead (slower).")
        if wants_compiled and not compiled:
            notes.append(f"kde: {NO_COMPILER}, so the tile sums run in PyTorch, 2–4× slower; install one, or "
                         "measure fewer points (measure.kde.points).")
        if notes:
            self.notes = tuple(notes)

    def _mi(self, layers: list[torch.Tensor], labels: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        if self.settings.precision == "float64":  # the same kernels, float64 sums (ibtui.measures.kde)
            layers = [h.double() for h in layers]
        narrow = [self.tiled and h.shape[-1] <= TILED_MAX_WIDTH for h in layers]
        tiled = iter(self._per_seed_labels(kde_mi_tiled, [h for h, t in zip(layers, narrow) if t], labels)
                     if any(narrow) else [])
        wide = iter(self._wide([h for h, t in zip(layers, narrow) if not t], labels))
        return [next(tiled) if t else next(wide) for t in narrow]

    def _per_seed_labels(self, fn, layers: list[torch.Tensor], labels: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """fn(layers, labels [N], σ²) with one label vector for all seeds, or seed by seed."""
        var = self.settings.noise_variance
        shared = shared_labels(labels)
        if shared is not None:
            return fn(layers, shared, var)
        per_seed = [fn([h[i:i + 1] for h in layers], labels[i], var) for i in range(labels.shape[0])]
        return [{k: torch.cat([seed[j][k] for seed in per_seed]) for k in per_seed[0][j]} for j in range(len(layers))]

    def _wide(self, layers: list[torch.Tensor], labels: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        if not layers:
            return []
        var = self.settings.noise_variance
        if not self.fused:
            return [per_labels(lambda h, y: kde_mi(h, y, var, exact_distances=False), h, labels) for h in layers]
        return self._per_seed_labels(kde_mi_attention, layers, labels)

    def at_snapshot(self, snap: Snapshot) -> Values:
        layers, labels = subset_of(snap, self.settings.points)
        out: Values = {}
        for index, mi in enumerate(self._mi(layers, labels), start=1):
            out[(str(index), Q.MI_XT, "kde_upper")] = mi["upper_xt"]
            out[(str(index), Q.MI_XT, "kde_lower")] = mi["lower_xt"]
            out[(str(index), Q.MI_TY, "kde_upper")] = mi["upper_ty"]
            out[(str(index), Q.MI_TY, "kde_lower")] = mi["lower_ty"]
        return out
