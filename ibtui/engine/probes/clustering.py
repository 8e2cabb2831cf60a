"""The per-layer clustering table: at each snapshot, how far every layer has collapsed into clusters.

Goldfeld et al. (ICML 2019) show that what the information plane calls compression is
the geometric clustering of same-class representations; the survey blog "Information Theory for Deep
Learning" asks whether a layer's partition is homogeneous in the label. This probe records the measures of
`ibtui.measures.clustering` (their names and one-line definitions are `DEFINITIONS`) for every layer and
seed, on the device, as quantities with estimator "". The scales follow the noise level β in force at
the snapshot: grid cells of width B = 10β (Goldfeld et al.'s bin for H(Bin(T))) and close pairs within
r = β (the noise scale), unless the scenario fixes them; a deterministic network (β = 0) has no noise
scale, so B = 0.1 and r = 0.01 stand in (settings `measure.clustering.bin_size` / `radius`).
"""
from __future__ import annotations

import torch

from ibtui.engine.context import RunContext
from ibtui.engine.probes.base import Probe, per_labels, subset_of
from ibtui.engine.snapshot import Snapshot, Values
from ibtui.measures.clustering import DEFINITIONS, clustering_measures, partition_homogeneity

# Stand-ins for the noise scale of a deterministic network (β = 0).
DEFAULT_BIN_SIZE = 0.1
DEFAULT_RADIUS = 0.01


def clustering_scales(settings, beta: float) -> tuple[float, float]:
    """(bin size B, radius r) at noise level β: the settings if set, else 10β and β (0.1 and 0.01 at β = 0)."""
    bin_size = settings.bin_size or (10.0 * beta if beta > 0 else DEFAULT_BIN_SIZE)
    radius = settings.radius or (beta if beta > 0 else DEFAULT_RADIUS)
    return bin_size, radius


def _scale_rule(value: float, factor: str, default: float) -> str:
    return f"{value:g} (fixed)" if value else f"{factor}β ({default:g} when β = 0)"


class ClusteringProbe(Probe):
    """Cells, H_bin, spread ratio, close pairs, cosine similarities and homogeneity of every layer."""

    def __init__(self, ctx: RunContext):
        st = ctx.sc.measure.clustering
        self.settings = st
        levels = sorted(set(ctx.sc.model.noise_levels))
        scales = "; ".join(f"β = {b:g}: B = {bs:g}, r = {r:g}"
                           for b, (bs, r) in ((b, clustering_scales(st, b)) for b in levels))
        where = f"a fixed random subset of {st.points} MI points" if st.points else "all MI points"
        self.notes = (
            f"clustering: on {where}, noiseless representations; grid cell width B = "
            f"{_scale_rule(st.bin_size, '10', DEFAULT_BIN_SIZE)}, close-pair radius r = "
            f"{_scale_rule(st.radius, '', DEFAULT_RADIUS)}, β the noise level at the snapshot ({scales})",
            *(f"clustering {name}: {text}" for name, text in DEFINITIONS.items()),
        )
        if not ctx.data.distinct_inputs and ctx.data.input_ids is not None:
            self.notes += (self._repeat_note(ctx),)

    @staticmethod
    def _repeat_note(ctx: RunContext) -> str:
        """With repeated inputs and noisy labels no cell can be purer than the inputs it holds: the ceiling of
        homogeneity is that of the partition into inputs, I(X;Y)/H(Y) on the measured points (seed 0's)."""
        ids, y = ctx.data.input_ids, ctx.data.y
        if ctx.mi_idx is not None:
            ids, y = ids[ctx.mi_idx[0]], y[ctx.mi_idx[0]]
        ceiling = float(partition_homogeneity(ids.to(torch.float64).view(1, -1, 1), y, 0.5)[0])
        return (f"clustering: inputs repeat ({int(ids.unique().numel())} distinct), so copies of one input sit at "
                f"distance 0 (close_pairs counts them; cells ≤ distinct inputs), and homogeneity is at most that of "
                f"the partition into inputs, I(X;Y)/H(Y) = {ceiling:.4f} here")

    def at_snapshot(self, snap: Snapshot) -> Values:
        bin_size, radius = clustering_scales(self.settings, snap.beta)
        layers, labels = subset_of(snap, self.settings.points)
        measures = lambda h, y: clustering_measures(h, y, bin_size, radius)  # noqa: E731
        out: Values = {}
        for index, h in enumerate(layers, start=1):
            m = per_labels(measures, h, labels)
            for name in DEFINITIONS:
                out[(str(index), name, "")] = m[name]
        return out
