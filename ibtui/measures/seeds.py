"""Aggregates over seeds: the `mean` rows of the export."""
from __future__ import annotations

import math

import torch


def seed_mean(values: torch.Tensor, quantity: str = "") -> float:
    """Mean of one quantity over seeds [S] (float32 on the host), ignoring non-finite entries; NaN if none is finite.
    A standard error (a quantity named `…_se`) gives the SE of the seed mean instead, √(Σ SE²)/n: each seed's
    estimate has its own inputs and draws (ibtui.engine.probes.sp), so the seeds' errors are independent.

    The one definition of a `mean` record: the engine applies it to the seeds still alive, and the torchrun
    merge (ibtui.sinks.csv.merge) to every rank's seeds, so both give the same number.
    """
    finite = values[torch.isfinite(values)]
    if not finite.numel():
        return math.nan
    if quantity.endswith("_se"):
        return float(finite.square().sum().sqrt() / finite.numel())
    return float(finite.mean())
