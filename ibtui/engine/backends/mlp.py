"""The fast back end for `BatchedMLP`: feature-major inputs ([S, d, B]) and the hand-written backward, or, for
narrow networks on a CPU, the compiled step (`ibtui.engine.backends.compiled_step`, run.compiled_step).

Other models (CNN, ResNet) train through autograd (`ibtui.engine.backends.autograd`).
"""
from __future__ import annotations

import torch

from ibtui import compiled
from ibtui.compiled import NO_COMPILER
from ibtui.engine import rng
from ibtui.engine.backends import compiled_step
from ibtui.engine.context import RunContext
from ibtui.errors import IbtuiError
from ibtui.engine.snapshot import loss_and_accuracy, take

SNAPSHOT_CHUNK = 16384  # points per forward at a snapshot when there are more (images)


class MlpBackend:
    def __init__(self, ctx: RunContext):
        self.ctx = ctx
        x = ctx.data.x
        self.x_t = x.reshape(x.shape[0], -1).t().contiguous()  # [d_in, N]: feature-major
        self.x_epoch = self.y_epoch = None
        self.order = self.labels = None  # the epoch's order and every label, where the compiled step reads them
        self._x_buf = None  # [d_in, S, n_train]; x_epoch is its [S, d_in, n_train] view
        self.compiled = None  # the compiled step, where run.compiled_step asks for it and it can run
        self.notes: tuple[str, ...] = ()
        self.training_step = "pytorch"  # or "compiled": the step that ran (RunInfo.training_step, in the sidecar)
        self.choice: compiled.Choice | None = None  # run.compiled_step = auto: the timing that chose the step
        mode = ctx.sc.run.compiled_step
        width = compiled_step.AUTO_MAX_WIDTH if mode == "auto" else compiled_step.MAX_WIDTH
        if mode is not False and compiled_step.supports(ctx.model, ctx.device, width):
            lib = compiled_step.library()
            if lib is None:
                self.notes = (f"training: {NO_COMPILER}, so PyTorch's step ran: as correct, and rounded "
                              "differently from the compiled step",)
                return
            step = compiled_step.CompiledStep(ctx.model, lib)
            self.labels = ctx.data.y.to(torch.int64).contiguous()
            if mode == "auto":
                self.choice = self._choose(step)
                why = f" (run.compiled_step = auto, the faster at this run's shapes: {self.choice.describe()})"
                if self.choice.path != "compiled":
                    self.labels = None
                    self.notes = (f"training: PyTorch's step{why}; run.compiled_step = true takes the compiled "
                                  "step, which rounds differently",)
                    return
            else:
                why = " (run.compiled_step = true)"
            self.compiled, self.training_step = step, "compiled"
            self.notes = (f"training: the compiled step (mlp_step.c){why}; its float rounding differs from "
                          "PyTorch's step (run.compiled_step = false)",)

    def use_step(self, name: str) -> None:
        """Train with step `name` ("compiled" or "pytorch") from now on: a resumed run keeps the step it began with,
        whatever the timing chooses on this machine today (the two round differently)."""
        if name == self.training_step:
            return
        lib = compiled_step.library() if name == "compiled" else None
        if name == "compiled" and lib is None:
            raise IbtuiError(f"this run was trained with the compiled step, which needs a working C compiler "
                             f"(cc, gcc or clang, and IBTUI_NATIVE unset); install one to resume it exactly.")
        if name == "compiled":
            self.compiled = compiled_step.CompiledStep(self.ctx.model, lib)
            self.labels = self.ctx.data.y.to(torch.int64).contiguous()
            self._x_buf = self.x_epoch = self.y_epoch = None
        else:
            self.compiled = self.order = None
        self.training_step = name
        what = "the compiled step (mlp_step.c)" if name == "compiled" else "PyTorch's step"
        self.notes = (f"training: {what}, the step this run began with (kept on resume: the two round differently)",)

    def _choose(self, step: compiled_step.CompiledStep) -> compiled.Choice:
        """Time one step of each path on the run's first batch (each seed's training points in their stored
        order; the starting noise level) and take the faster (`ibtui.compiled.choose`: once per machine and
        shapes). Only the gradients are touched, and they are cleared after: the run's numbers do not change."""
        ctx = self.ctx
        order = ctx.train_idx.contiguous()
        batch = min(ctx.sc.train.batch_size, order.shape[1])
        beta = ctx.sc.model.noise_levels[ctx.sc.model.noise_start]

        def one(path):
            def call():
                if self.order is None:  # first call: PyTorch's buffers (self.compiled is None here), then the order
                    self.start_epoch(order)
                    self.order = order
                self.compiled = step if path == "compiled" else None
                self.forward_backward(0, batch, beta, 0)
            return call

        parts = {"source": compiled.source_key("ibtui.engine.backends", compiled_step.SOURCE, compiled_step.FLAG_SETS),
                 "sizes": list(ctx.model.sizes), "activation": ctx.model.activation_name, "seeds": ctx.n_seeds,
                 "batch": batch, "noise": beta > 0, "threads": torch.get_num_threads(), "torch": torch.__version__}
        try:
            return compiled.choose("training_step", parts, {"compiled": one("compiled"), "pytorch": one("pytorch")})
        finally:
            self.compiled = self.order = None
            self._x_buf = self.x_epoch = self.y_epoch = None
            for p in ctx.model.parameters():
                p.grad = None

    def start_epoch(self, order: torch.Tensor) -> None:
        """Gather the epoch's inputs, one gather for all seeds, into buffers that stay at the same address
        from epoch to epoch (a captured CUDA graph reads them there); the compiled step keeps only the order."""
        if self.compiled is not None:  # it reads the points through the order itself
            self.order = order.contiguous()
            return
        s, n = order.shape
        d, y = self.x_t.shape[0], self.ctx.data.y
        if self._x_buf is None or self._x_buf.shape != (d, s, n):
            self._x_buf = self.x_t.new_empty((d, s, n))
            self.x_epoch = self._x_buf.permute(1, 0, 2)
            self.y_epoch = y.new_empty((s, n))
        flat = order.reshape(-1)
        torch.index_select(self.x_t, 1, flat, out=self._x_buf.view(d, s * n))
        torch.index_select(y, 0, flat, out=self.y_epoch.view(s * n))

    def forward_backward(self, start: int, stop: int, beta: float, step: rng.Counter) -> None:
        """Hand-written forward and backward (`BatchedMLP.train_grads`): each seed's gradient is that of its own
        mean loss, so seeds stay independent. `step` may be a device counter (a captured CUDA graph)."""
        noise = rng.noise_fn(self.ctx.seed_tensor, (rng.STREAM_NOISE, step)) if beta > 0 else None
        if self.compiled is not None:
            s, batch = self.ctx.n_seeds, stop - start
            eps = [noise(layer, self.x_t.new_empty((s, width, batch)))
                   for layer, width in enumerate(self.ctx.model.hidden_widths)] if noise is not None else None
            self.compiled(self.x_t, self.labels, self.order, start, stop, beta, eps)
            return
        self.ctx.model.train_grads(self.x_epoch[:, :, start:stop], self.y_epoch[:, start:stop], beta, noise)

    @torch.no_grad()
    def snapshot(self, mi_idx):
        e = self.ctx
        s = e.n_seeds
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
        e = self.ctx
        s, n = e.n_seeds, self.x_t.shape[1]
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
