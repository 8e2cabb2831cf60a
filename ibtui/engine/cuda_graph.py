"""Training epochs replayed as captured CUDA graphs: one launch per epoch instead of ~50 kernels per step.

The SZT network's layers are so narrow that a GPU step is bound by kernel launches, not by arithmetic
(H100, 50 seeds: ~2.5 ms a step of Python and launches for microseconds of work). An epoch of the MLP
path is a fixed sequence of kernels once its inputs sit at fixed addresses, so it can be captured once
(`torch.cuda.graph`) and replayed every epoch:

- the epoch's shuffled inputs are written into the path's static buffers (`MlpPath.start_epoch`), eagerly;
- the noise counters read the step from a device tensor (`rng` hashes a 0-dim tensor like the same int),
  set before each replay; the optimiser is built `capturable` so its step count lives on the device;
- one graph per noise level β (β is a constant inside the captured kernels);
- epochs whose steps a probe must watch (the dynamics probe reads every gradient of an epoch that ends in
  a snapshot) run eagerly, as do the first epoch at each β (the warm-up that creates the optimiser's state).

Off by default (`run.cuda_graph`); if capturing fails, training goes on eagerly and a warning says why.
"""
from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from ibtui.engine.trainer import Engine


def graphs_possible(engine: "Engine") -> bool:
    """Captured epochs need a CUDA device and the MLP's fixed-shape path."""
    from ibtui.engine.backends.mlp import MlpPath

    return engine.device.type == "cuda" and isinstance(engine.path, MlpPath)


class EpochGraphs:
    """Captured epochs, one per noise level, replayed by `run_epoch`."""

    def __init__(self, engine: "Engine"):
        self.engine = engine
        self.graphs: dict[float, torch.cuda.CUDAGraph] = {}
        self.warmed: set[float] = set()
        self.step_counter = torch.zeros((), dtype=torch.int64, device=engine.device)
        self.replays = 0
        self.error: str | None = None

    def covers(self, hooks: list) -> bool:
        """True if this epoch may be replayed: capture has not failed and every active hook is graph-safe."""
        return self.error is None and all(h.graph_safe for h in hooks)

    def run_epoch(self, beta: float, hooks: list) -> None:
        """Train one epoch at noise level β: eagerly the first time, captured the second, replayed after."""
        e = self.engine
        graph = self.graphs.get(beta)
        if graph is None:
            if beta not in self.warmed:  # warm-up: creates optimiser state and library handles off-graph
                side = torch.cuda.Stream(device=e.device)
                side.wait_stream(torch.cuda.current_stream(e.device))
                with torch.cuda.stream(side):
                    e.run_steps(beta, hooks)
                torch.cuda.current_stream(e.device).wait_stream(side)
                self.warmed.add(beta)
                return
            graph = self._capture(beta, hooks)
            if graph is None:
                e.run_steps(beta, hooks)
                return
        self.step_counter.fill_(e.step)
        graph.replay()
        e.step += e.steps_per_epoch
        self.replays += 1

    def _capture(self, beta: float, hooks: list) -> torch.cuda.CUDAGraph | None:
        e = self.engine
        first_step = e.step
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):  # a private memory pool per graph: replays never share temporaries
                e.run_steps(beta, hooks, step_counter=self.step_counter)
        except Exception as exc:  # noqa: BLE001 — any capture failure means: train eagerly
            self.error = f"{type(exc).__name__}: {exc}"
            warnings.warn(f"run.cuda_graph: capturing an epoch failed ({self.error}); training continues "
                          f"without CUDA graphs.", RuntimeWarning, stacklevel=2)
            e.step = first_step
            torch.cuda.synchronize(e.device)
            return None
        e.step = first_step  # capture ran the Python loop once without running a kernel
        self.graphs[beta] = graph
        return graph
