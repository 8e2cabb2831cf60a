"""How the engine drives one family of models: batches, gradients and the snapshot forward pass.

The engine's loop (epochs, controls, probes, records) is the same for every model; a *path* supplies
the model-specific parts. `MlpPath` is the fast path for `BatchedMLP`: inputs are kept feature-major
([S, d, B]) and gradients come from the hand-written backward. Other models (CNN, ResNet) use a path
built on autograd (`ibtui.engine.module_path`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import torch

from ibtui.engine.snapshot import Values, loss_and_accuracy, take

if TYPE_CHECKING:
    from ibtui.engine.trainer import Engine


class ModelPath(Protocol):
    def start_epoch(self, order: torch.Tensor) -> None:
        """order [S, n_train]: each seed's training points in this epoch's order."""

    def grads(self, start: int, stop: int, beta: float, noise) -> None:
        """Set every parameter's .grad to that of the mean loss of batch order[:, start:stop], per seed."""

    def snapshot(self, mi_idx: torch.Tensor | None) -> tuple[Values, list[torch.Tensor], list[str]]:
        """Noiseless pass: (loss/accuracy values, layers [S, n, d] on the MI points, their activations)."""


class MlpPath:
    def __init__(self, engine: "Engine"):
        self.engine = engine
        x = engine.data.x
        self.x_t = x.reshape(x.shape[0], -1).t().contiguous()  # [d_in, N]: feature-major
        self.x_epoch = self.y_epoch = None

    def start_epoch(self, order: torch.Tensor) -> None:
        self.x_epoch = self.x_t[:, order].permute(1, 0, 2)  # [S, d_in, n_train]: one gather per epoch
        self.y_epoch = self.engine.data.y[order]

    def grads(self, start: int, stop: int, beta: float, noise) -> None:
        # Each seed's gradient is that of its own mean loss, so seeds stay independent.
        self.engine.model.train_grads(self.x_epoch[:, :, start:stop], self.y_epoch[:, start:stop], beta, noise)

    @torch.no_grad()
    def snapshot(self, mi_idx):
        e = self.engine
        s = len(e.seeds)
        logits_t, hidden_t = e.model.forward_t(self.x_t.expand(s, -1, -1))  # noiseless, all points and seeds
        values = loss_and_accuracy(logits_t, e.data.y, e.data.train, e.data.test)
        layers = [take(h.transpose(1, 2), mi_idx) for h in [*hidden_t, torch.softmax(logits_t, dim=1)]]
        activations = [e.sc.model.activation] * len(hidden_t) + ["softmax"]
        return values, layers, activations


def build_path(engine: "Engine") -> ModelPath:
    if engine.sc.model.kind == "mlp":
        return MlpPath(engine)
    from ibtui.engine.module_path import ModulePath  # autograd path for convolutional models

    return ModulePath(engine)
