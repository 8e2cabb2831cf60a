"""How the engine drives one family of models: batches, gradients and the snapshot forward pass.

The engine's loop (epochs, controls, probes, records) is the same for every model; a *path* supplies
the model-specific parts. `MlpPath` is the fast path for `BatchedMLP`: inputs are kept feature-major
([S, d, B]) and gradients come from the hand-written backward. Other models (CNN, ResNet) use a path
built on autograd (`ibtui.engine.backends.autograd`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import torch

from ibtui.engine.snapshot import Values, loss_and_accuracy, take

if TYPE_CHECKING:
    from ibtui.engine.trainer import Engine

SNAPSHOT_CHUNK = 16384  # MlpPath: points per forward at a snapshot when there are more (images)


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
        self._x_buf = None  # [d_in, S, n_train]; x_epoch is its [S, d_in, n_train] view

    def start_epoch(self, order: torch.Tensor) -> None:
        """Gather the epoch's inputs, one gather for all seeds, into buffers that stay at the same address
        from epoch to epoch (a captured CUDA graph reads them there)."""
        s, n = order.shape
        d, y = self.x_t.shape[0], self.engine.data.y
        if self._x_buf is None or self._x_buf.shape != (d, s, n):
            self._x_buf = self.x_t.new_empty((d, s, n))
            self.x_epoch = self._x_buf.permute(1, 0, 2)
            self.y_epoch = y.new_empty((s, n))
        flat = order.reshape(-1)
        torch.index_select(self.x_t, 1, flat, out=self._x_buf.view(d, s * n))
        torch.index_select(y, 0, flat, out=self.y_epoch.view(s * n))

    def grads(self, start: int, stop: int, beta: float, noise) -> None:
        # Each seed's gradient is that of its own mean loss, so seeds stay independent.
        self.engine.model.train_grads(self.x_epoch[:, :, start:stop], self.y_epoch[:, start:stop], beta, noise)

    @torch.no_grad()
    def snapshot(self, mi_idx):
        e = self.engine
        s = len(e.seeds)
        if self.x_t.shape[1] > SNAPSHOT_CHUNK:
            return self._snapshot_chunked(mi_idx)
        logits_t, hidden_t = e.model.forward_t(self.x_t.expand(s, -1, -1))  # noiseless, all points and seeds
        values = loss_and_accuracy(logits_t, e.data.y, e.data.train, e.data.test)
        layers = [take(h.transpose(1, 2), mi_idx) for h in [*hidden_t, torch.softmax(logits_t, dim=1)]]
        activations = [e.sc.model.activation] * len(hidden_t) + ["softmax"]
        return values, layers, activations

    def _snapshot_chunked(self, mi_idx):
        """The same for many points (images): logits of all points in chunks, layers of the MI points only.

        Forwarding all 70k MNIST points at once would hold [S, 500, 70k] floats per layer; chunks of
        SNAPSHOT_CHUNK points keep memory bounded, and only the (usually fewer) MI points keep their layers.
        """
        e = self.engine
        s, n = len(e.seeds), self.x_t.shape[1]
        logits_t = torch.cat([e.model.forward_t(self.x_t[:, a:a + SNAPSHOT_CHUNK].expand(s, -1, -1))[0]
                              for a in range(0, n, SNAPSHOT_CHUNK)], dim=2)
        values = loss_and_accuracy(logits_t, e.data.y, e.data.train, e.data.test)
        idx = mi_idx if mi_idx is not None else torch.arange(n, device=self.x_t.device).expand(s, n)
        parts = [e.model.forward_t(self.x_t[:, idx[:, a:a + SNAPSHOT_CHUNK]].permute(1, 0, 2))
                 for a in range(0, idx.shape[1], SNAPSHOT_CHUNK)]
        hidden_t = [torch.cat(hs, dim=2) for hs in zip(*(h for _, h in parts))]
        logits_mi = torch.cat([z for z, _ in parts], dim=2)
        layers = [h.transpose(1, 2) for h in [*hidden_t, torch.softmax(logits_mi, dim=1)]]
        activations = [e.sc.model.activation] * len(hidden_t) + ["softmax"]
        return values, layers, activations


def build_path(engine: "Engine") -> ModelPath:
    if engine.sc.model.kind == "mlp":
        return MlpPath(engine)
    from ibtui.engine.backends.autograd import ModulePath  # autograd path for convolutional models

    return ModulePath(engine)
