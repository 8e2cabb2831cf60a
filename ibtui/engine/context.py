"""The run context: what the engine's parts (back ends, probes, regularisers, graph capture) may read.

The Engine builds one after the data and the model, and hands it to every part instead of itself; it is
frozen, so no part can change what another part sees. What changes during a run (the step, the epoch,
the noise level) reaches the parts as explicit arguments, never through the context.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ibtui.data.dataset import Dataset
from ibtui.scenario import Scenario


@dataclass(frozen=True, eq=False)
class RunContext:
    sc: Scenario  # the scenario (settings only)
    device: torch.device
    seeds: tuple[int, ...]  # seed ids, in the order of the models' seed dimension
    seed_tensor: torch.Tensor  # the same ids [S] on the device (the counter-based random streams' keys)
    data: Dataset  # every point on the device, with each seed's train/test split
    model: torch.nn.Module  # all seeds' networks at once (the parameters the optimiser trains)
    train_idx: torch.Tensor  # [S, n_train]: each seed's training points
    mi_idx: torch.Tensor | None  # [S, n]: the points MI is measured on, None = all points
    snapshot_steps: frozenset[int]  # the optimiser steps after which a snapshot is measured (0 = the initial network)
    steps_per_epoch: int  # optimiser steps in an epoch (the last batch may be smaller)

    @property
    def n_seeds(self) -> int:
        return len(self.seeds)

    def x_ids(self, point_idx: torch.Tensor | None) -> torch.Tensor | None:
        """Identity of each measured input (equal ids for repeated inputs), or None when all are distinct."""
        if self.data.distinct_inputs:
            return None
        ids = self.data.input_ids
        return ids if point_idx is None else ids[point_idx]
