"""Aggregates over seeds: the `mean` rows of the export."""
from __future__ import annotations

import math

import torch


def seed_mean(values: torch.Tensor) -> float:
    """Mean of one quantity over seeds [S] (float32 on the host), ignoring non-finite entries; NaN if none is finite.

    The one definition of a `mean` record: the engine applies it to the seeds still alive, and the torchrun
    merge (ibtui.sinks.csv.merge) to every rank's seeds, so both give the same number.
    """
    finite = values[torch.isfinite(values)]
    return float(finite.mean()) if finite.numel() else math.nan
