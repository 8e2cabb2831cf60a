"""Training back ends: how one family of models gets its gradients and its snapshot pass.

The engine's loop (epochs, steps, hooks, optimiser, controls, probes, records) is the same for every model;
a back end supplies the model-specific parts, built from the run context:

- `MlpBackend` (`mlp.py`): the fast back end for `BatchedMLP`: inputs kept feature-major ([S, d, B]) in buffers
  at fixed addresses (what a captured CUDA graph needs) and gradients from the hand-written backward, or, for
  narrow networks on a CPU, from the compiled step (`compiled_step.py`, `mlp_step.c`);
- `AutogradBackend` (`autograd.py`): convolutional models (CNN, ResNet) through autograd, image batches,
  augmentation.
"""
from __future__ import annotations

from typing import Protocol

import torch

from ibtui.engine.context import RunContext
from ibtui.engine.rng import Counter
from ibtui.engine.snapshot import Values


class Backend(Protocol):
    def start_epoch(self, order: torch.Tensor) -> None:
        """order [S, n_train]: each seed's training points in this epoch's order."""

    def forward_backward(self, start: int, stop: int, beta: float, step: Counter) -> None:
        """Set every trainable parameter's .grad to that of each seed's mean loss on batch order[:, start:stop],
        the network's noise β (and any augmentation) drawn at counter `step`."""

    notes: tuple[str, ...]  # what a reader of the run's results should know of how it was trained (RunInfo.notes)

    def snapshot(self, mi_idx: torch.Tensor | None) -> tuple[Values, list[torch.Tensor], list[str]]:
        """Noiseless pass: (loss/accuracy values, layers [S, n, d] on the MI points, their activations)."""


def build_backend(ctx: RunContext) -> Backend:
    if ctx.sc.model.kind == "mlp":
        from ibtui.engine.backends.mlp import MlpBackend

        return MlpBackend(ctx)
    from ibtui.engine.backends.autograd import AutogradBackend  # convolutional models

    return AutogradBackend(ctx)
