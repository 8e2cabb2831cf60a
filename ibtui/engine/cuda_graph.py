"""Training epochs replayed as captured CUDA graphs: one launch per epoch instead of ~50 kernels per step.

The SZT network's layers are so narrow that a GPU step is bound by kernel launches, not by arithmetic
(benchmarks/bench_szt.py on an H100, 50 seeds: ~2.5 ms a step of Python and launches for microseconds of
work). An epoch of the MLP
back end is a fixed sequence of kernels once its inputs sit at fixed addresses, so it can be captured once
(`torch.cuda.graph`) and replayed every epoch:

- the epoch's shuffled inputs are written into the back end's static buffers (`MlpBackend.start_epoch`), eagerly;
- the noise counters read the step from a device tensor (`rng` hashes a 0-dim tensor like the same int),
  set before each replay; the optimiser is built `capturable` so its step count lives on the device;
- one graph per noise level β and learning rate (constants inside the captured kernels); an epoch in which
  the learning rate changes (train.lr_milestones) runs eagerly;
- epochs whose steps a probe must watch (the dynamics probe reads every gradient of its SNR windows, the
  steps just before a snapshot) run eagerly, as does the first epoch at each key (the warm-up that creates
  the optimiser's state).

What is captured is the engine's own step loop, handed over as a function of the first step's counter;
this module never sees the Engine. Off by default (`run.cuda_graph`); if capturing fails, training goes on
eagerly and a warning says why.
"""
from __future__ import annotations

import warnings
from typing import Callable, Hashable

import torch

from ibtui.engine.context import RunContext
from ibtui.engine.rng import Counter

Steps = Callable[[Counter], None]  # runs one epoch's optimiser steps, the first at the given step counter


def graphs_possible(ctx: RunContext) -> bool:
    """Captured epochs need a CUDA device and the MLP back end's fixed-shape buffers."""
    return ctx.device.type == "cuda" and ctx.sc.model.kind == "mlp"


class EpochGraphs:
    """Captured epochs, one per key (noise level, learning rate), replayed by `run_epoch`."""

    def __init__(self, device: torch.device):
        self.device = device
        self.graphs: dict[Hashable, torch.cuda.CUDAGraph] = {}
        self.warmed: set[Hashable] = set()
        self.step_counter = torch.zeros((), dtype=torch.int64, device=device)
        self.replays = 0
        self.error: str | None = None

    def covers(self, hooks: list) -> bool:
        """True if this epoch may be replayed: capture has not failed and every active hook is graph-safe."""
        return self.error is None and all(h.graph_safe for h in hooks)

    def run_epoch(self, key: Hashable, first_step: int, steps: Steps) -> None:
        """Train one epoch whose first step is `first_step`: eagerly the first time for `key`, captured the
        second, replayed after."""
        graph = self.graphs.get(key)
        if graph is None:
            if key not in self.warmed:  # warm-up: creates optimiser state and library handles off-graph
                side = torch.cuda.Stream(device=self.device)
                side.wait_stream(torch.cuda.current_stream(self.device))
                with torch.cuda.stream(side):
                    steps(first_step)
                torch.cuda.current_stream(self.device).wait_stream(side)
                self.warmed.add(key)
                return
            graph = self._capture(key, steps)
            if graph is None:
                steps(first_step)
                return
        self.step_counter.fill_(first_step)
        graph.replay()
        self.replays += 1

    def _capture(self, key: Hashable, steps: Steps) -> torch.cuda.CUDAGraph | None:
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):  # a private memory pool per graph: replays never share temporaries
                steps(self.step_counter)  # runs the Python loop once; no kernel runs until a replay
        except Exception as exc:  # noqa: BLE001 — any capture failure means: train eagerly
            self.error = f"{type(exc).__name__}: {exc}"
            warnings.warn(f"run.cuda_graph: capturing an epoch failed ({self.error}); training continues "
                          f"without CUDA graphs.", RuntimeWarning, stacklevel=2)
            torch.cuda.synchronize(self.device)
            return None
        self.graphs[key] = graph
        return graph
