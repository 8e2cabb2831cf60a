"""Regularisers: terms added to the loss's gradients after each backward pass, before the optimiser step.

They act on the gradients directly (the MLP back end computes its gradients by hand), so a penalty is a
function of the weights that adds its own gradient to `.grad`.
"""
from __future__ import annotations

from ibtui.engine.context import RunContext


def build_regularizers(ctx: RunContext) -> list:
    """The scenario's regularisers: step hooks (watches_steps, graph_safe, watches_epoch, after_step) like probes."""
    out = []
    if ctx.sc.model.orthonormal > 0:
        from ibtui.engine.orthonormal import OrthonormalPenalty

        out.append(OrthonormalPenalty(ctx))
    return out
