"""The compiled training step (mlp_step.c) for narrow MLPs on a CPU: forward, loss gradient and backward of
every seed in one C call, built and cached by `ibtui.compiled`.

Why compiled: the SZT network (12-10-7-5-4-3-2) does ~0.7 MFLOP a seed a step; in PyTorch a step is ~50
operations, each a pass over memory with its own overhead, so the engine trained 50 seeds at only ~11–14× the
plain per-seed loop. One loop per seed that keeps a batch's layers in cache is 2.0–3.0× faster a step on an
AVX2 CPU's native and x86-64-v3 builds (1.1–1.5× with SSE2 alone) and 3–4.7× on an AVX-512 one
(benchmarks/bench_step.py), and the engine 22–38× the plain loop (benchmarks/bench_szt.py, docs/PERFORMANCE.md).
Which step trains is timed per machine under run.compiled_step = auto, not assumed from these figures.

Its rounding is fixed by the source (fixed-order sums, IEEE arithmetic, no contraction into FMA), so a run
gives the same bits on any machine with a C compiler; it differs from PyTorch's operations (whose matmul sums in
an order of its own) in float rounding only (tests/engine/test_compiled_step.py). `run.compiled_step = false`
keeps PyTorch's step; `auto` (the default) times both at the run's shapes and takes the faster.
"""
from __future__ import annotations

import ctypes
from functools import cache

import torch

from ibtui import compiled

SOURCE = "mlp_step.c"
# IEEE arithmetic in both: -ffp-contract=off keeps a*b + c two roundings (GCC contracts by default on aarch64).
FLAG_SETS = (["-O3", "-march=native", "-ffp-contract=off", "-fno-fast-math"],
             ["-O3", "-ffp-contract=off", "-fno-fast-math"])
ACTIVATIONS = {"linear": 0, "tanh": 1, "relu": 2}
# Widest layer (inputs included) the compiled step takes. benchmarks/bench_step.py, 50 seeds, batch 512, one
# thread (docs/PERFORMANCE.md): on an AVX-512 EPYC 3.0–4.7× PyTorch's step on the SZT net, 2.1–3.6× at width 64,
# 1.15–1.66× at 128, 0.88–1.17× at 256, 0.71–0.77× on MNIST's 784-500-…; on an AVX2 EPYC (native and x86-64-v3
# builds) 2.0–3.0× on the SZT net, 3.3–3.5× at 64, 1.65–2.2× at 128: wide layers are PyTorch's matmul's ground.
MAX_WIDTH = 128
# run.compiled_step = auto times both steps at the run's shapes (MlpBackend._choose) up to this width: the rule above
# is one CPU's. Wider layers are not timed (a step there costs a large part of the start-up's timing budget, and
# the compiled step lost at MNIST's widths on every CPU measured: 0.71–0.77× on AVX-512, 0.30–0.56× on a 2-core AVX2 EPYC).
AUTO_MAX_WIDTH = 256
MAX_LAYERS = 32  # mlp_step.c's MAX_LAYERS


def bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    p, i64 = ctypes.c_void_p, ctypes.c_int64
    lib.mlp_step.argtypes = [i64, i64, i64, p, p, p, i64, p, i64, i64, i64, p, p, p, p, ctypes.c_int,
                             ctypes.c_float, p, p, i64]
    lib.mlp_step.restype = ctypes.c_int
    lib.mlp_step_work.argtypes = [i64, p, i64]
    lib.mlp_step_work.restype = i64
    return lib


@cache
def library() -> ctypes.CDLL | None:
    """The loaded library, or None (no compiler, a failed build, or IBTUI_NATIVE=0)."""
    return compiled.library("ibtui.engine.backends", SOURCE, FLAG_SETS, bind)


def supports(model: torch.nn.Module, device: torch.device, max_width: int = MAX_WIDTH) -> bool:
    """Whether the compiled step can train this model: a float32 BatchedMLP on a CPU, its activation one the
    kernel knows, no layer wider than `max_width`, at most MAX_LAYERS layers."""
    weights = getattr(model, "weights", None)
    return (device.type == "cpu" and weights is not None and len(weights) <= MAX_LAYERS
            and getattr(model, "activation_name", None) in ACTIVATIONS
            and all(w.dtype == torch.float32 for w in weights) and max(model.sizes) <= max_width)


def _pointers(tensors) -> ctypes.Array:
    return (ctypes.c_void_p * len(tensors))(*[t.data_ptr() for t in tensors])


class CompiledStep:
    """Sets each parameter's .grad to that of its seed's mean loss, as `BatchedMLP.train_grads` does. The
    gradients live in buffers of their own, overwritten at every step."""

    def __init__(self, model: torch.nn.Module, lib: ctypes.CDLL):
        self.lib = lib
        self.weights, self.biases = list(model.weights), list(model.biases)
        self.params = [*self.weights, *self.biases]
        self.grads = [torch.zeros_like(p) for p in self.params]
        self.sizes = (ctypes.c_int64 * len(model.sizes))(*model.sizes)
        self.act = ACTIVATIONS[model.activation_name]
        n = len(self.weights)
        self._gw, self._gb = _pointers(self.grads[:n]), _pointers(self.grads[n:])
        self._at: list[int] = []  # the parameters' addresses when _w, _b were made
        self._w = self._b = None
        self._work = torch.empty(0)  # the kernel's working memory, kept from step to step

    def _parameters(self) -> tuple[ctypes.Array, ctypes.Array]:
        """Pointer arrays to the weights and biases, remade only if a parameter has moved (it is updated in place)."""
        at = [p.data_ptr() for p in self.params]
        if at != self._at:
            if not all(p.is_contiguous() for p in self.params):
                raise ValueError("the compiled step needs contiguous parameters")
            self._w, self._b, self._at = _pointers(self.weights), _pointers(self.biases), at
        return self._w, self._b

    def __call__(self, x: torch.Tensor, y: torch.Tensor, order: torch.Tensor, start: int, stop: int, beta: float,
                 noise: list[torch.Tensor] | None) -> None:
        """x: every point's inputs, feature-major [d_in, N]; y: their labels [N] (int64); order: each seed's epoch
        order [S, n] (int64 indices of points); the batch is positions [start, stop) of it; noise: per hidden layer
        [S, h_l, stop − start] standard normals, or None. All contiguous."""
        n_seeds, n = order.shape
        w, b = self._parameters()
        eps = _pointers(noise) if noise else None
        need = self.lib.mlp_step_work(len(self.weights), self.sizes, stop - start)
        if self._work.numel() < need:
            self._work = torch.empty(need)
        done = self.lib.mlp_step(0, n_seeds, len(self.weights), self.sizes, x.data_ptr(), y.data_ptr(), x.shape[1],
                                 order.data_ptr(), n, start, stop, w, b, self._gw, self._gb, self.act,
                                 float(beta) if noise else 0.0, eps, self._work.data_ptr(), self._work.numel())
        if done != 0:
            raise ValueError(f"the compiled training step refused its arguments (batch [{start}, {stop}))")
        for p, g in zip(self.params, self.grads):
            p.grad = g
