"""Regularisers: terms added to the loss's gradients after each backward pass, before the optimiser step.

They act on the gradients directly (the MLP path computes its gradients by hand), so a penalty is a
function of the weights that adds its own gradient to `.grad`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ibtui.engine.trainer import Engine


def build_regularizers(engine: "Engine") -> list:
    out = []
    if engine.sc.model.orthonormal > 0:
        from ibtui.engine.orthonormal import OrthonormalPenalty

        out.append(OrthonormalPenalty(engine))
    return out
