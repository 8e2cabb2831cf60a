"""Probes: what the engine measures, one object per measure family, one file each (binning, kde, sp, exact,
renyi, ksg, dynamics, clustering; the base class and shared helpers in base.py), all driven the same way.

A probe is built from the run context (`ibtui.engine.context.RunContext`, never the Engine). It can watch
training steps (`after_step(step, epoch)`, e.g. gradient moments) and returns, at each snapshot, a dict
{(layer, quantity, estimator): Tensor[S]} computed on the device from the `Snapshot` it is given. Probes do
not read each other's results: what one needs from another (the dynamics probe's I(X;T) of the last hidden
layer) is a field of the Snapshot that the engine fills in between the MI estimators and the other measures.
"""
from __future__ import annotations

from ibtui.engine.context import RunContext
from ibtui.engine.probes.base import Probe


def build_probes(ctx: RunContext) -> tuple[list[Probe], list[Probe]]:
    """The probes a scenario asks for: (MI estimators in the order of measure.estimators, the other measures)."""
    from ibtui.engine.probes.binning import BinningProbe
    from ibtui.engine.probes.exact import ExactProbe
    from ibtui.engine.probes.kde import KdeProbe
    from ibtui.engine.probes.ksg import KsgProbe
    from ibtui.engine.probes.renyi import RenyiProbe
    from ibtui.engine.probes.sp import SpProbe

    kinds = {"binning": BinningProbe, "kde": KdeProbe, "sp": SpProbe, "exact": ExactProbe, "renyi": RenyiProbe,
             "ksg": KsgProbe}
    estimators: list[Probe] = [kinds[name](ctx) for name in ctx.sc.measure.estimators]
    measures: list[Probe] = []
    if ctx.sc.measure.dynamics.enabled:
        from ibtui.engine.probes.dynamics import DynamicsProbe

        measures.append(DynamicsProbe(ctx))
    if ctx.sc.measure.clustering.enabled:
        from ibtui.engine.probes.clustering import ClusteringProbe

        measures.append(ClusteringProbe(ctx))
    return estimators, measures
