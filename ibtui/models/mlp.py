"""A fully connected network for many seeds at once: weights [S, in, out], one forward for all seeds.

Each seed's parameters are drawn from its own generator, so a seed's initialisation does not depend
on which other seeds share the tensor. With β > 0 Gaussian noise β·ε is added to every hidden
layer's output after its nonlinearity (Goldfeld et al.'s noisy network); the returned
representation of a layer is its noiseless output S_l (later layers see the noisy T_l = S_l + βε).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": lambda z: fast_tanh(z),
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "linear": lambda z: z,
}

NoiseFn = Callable[[int, torch.Tensor], torch.Tensor]


class _SigmoidTanh(torch.autograd.Function):
    """tanh(x) = 2·sigmoid(2x) − 1, with backward 1 − tanh². On the CPU, PyTorch's sigmoid kernel is faster
    than its tanh kernel (benchmarks/bench_szt.py times the engine); the absolute difference is below 2e-7
    (float32 rounding near 0.5)."""

    @staticmethod
    def forward(ctx, x):
        t = torch.sigmoid(2.0 * x).mul_(2.0).sub_(1.0)
        ctx.save_for_backward(t)
        return t

    @staticmethod
    def backward(ctx, grad):
        (t,) = ctx.saved_tensors
        return grad * (1.0 - t * t)


def fast_tanh(x: torch.Tensor) -> torch.Tensor:
    return _SigmoidTanh.apply(x) if x.device.type == "cpu" else torch.tanh(x)


def _activate(name: str, z: torch.Tensor) -> torch.Tensor:
    """The activation without autograd, in place on z where that is safe (z is not needed afterwards)."""
    if name == "tanh":
        return torch.sigmoid(z.mul_(2.0)).mul_(2.0).sub_(1.0) if z.device.type == "cpu" else torch.tanh_(z)
    if name == "relu":
        return torch.relu_(z)
    if name == "sigmoid":
        return torch.sigmoid_(z)
    return z


def _activation_grad(name: str, s: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """d loss / d z from d loss / d s, given the activation's output s (grad is overwritten)."""
    if name == "tanh":
        return grad.mul_(1.0 - s * s)
    if name == "relu":
        return grad.mul_(s > 0)
    if name == "sigmoid":
        return grad.mul_(s * (1.0 - s))
    return grad


def init_weight(shape: tuple[int, int], scheme: str, generator: torch.Generator) -> torch.Tensor:
    """One seed's weight [in, out] under an initialisation scheme.

    truncated_normal: N(0, 1/fan_in) cut at ±2 std (IDNNs' `initilizae_layer`, TF's truncated normal);
    normal: N(0, 1/fan_in); xavier_uniform / kaiming_uniform: PyTorch's usual schemes.
    """
    fan_in, fan_out = shape
    w = torch.empty(shape)
    std = 1.0 / math.sqrt(fan_in)
    if scheme == "truncated_normal":
        nn.init.trunc_normal_(w, std=std, a=-2 * std, b=2 * std, generator=generator)
    elif scheme == "normal":
        nn.init.normal_(w, std=std, generator=generator)
    elif scheme == "xavier_uniform":
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        nn.init.uniform_(w, -bound, bound, generator=generator)
    elif scheme == "kaiming_uniform":
        bound = math.sqrt(6.0 / fan_in)
        nn.init.uniform_(w, -bound, bound, generator=generator)
    else:
        raise ValueError(f"unknown init {scheme!r}")
    return w


class BatchedMLP(nn.Module):
    """sizes = [d_in, h_1, …, h_K, n_classes]; hidden activation as named; linear logits."""

    def __init__(self, seeds: list[int], sizes: list[int], activation: str = "tanh",
                 init: str = "truncated_normal"):
        super().__init__()
        self.seeds = list(seeds)
        self.sizes = list(sizes)
        self.activation_name = activation
        self.act = ACTIVATIONS[activation]
        weights, biases = [], []
        for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            ws = []
            for s in self.seeds:
                g = torch.Generator().manual_seed(int(s) * 1000003 + layer)
                ws.append(init_weight((fan_in, fan_out), init, g))
            weights.append(nn.Parameter(torch.stack(ws)))
            biases.append(nn.Parameter(torch.zeros(len(self.seeds), 1, fan_out)))
        self.weights = nn.ParameterList(weights)
        self.biases = nn.ParameterList(biases)

    @property
    def hidden_widths(self) -> list[int]:
        return self.sizes[1:-1]

    def forward(self, x: torch.Tensor, beta: float = 0.0, noise: NoiseFn | None = None
                ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x: [N, d_in] (same inputs for every seed) or [S, B, d_in] → (logits [S, B, C], hidden [S, B, h_l]…).

        Internally activations are kept feature-major, [S, d, B]: the batch is the long, contiguous
        dimension, which makes the batched matmuls of these narrow layers faster (benchmarks/bench_szt.py).
        """
        xt = x.t().expand(len(self.seeds), -1, -1) if x.dim() == 2 else x.transpose(1, 2)
        logits_t, hidden_t = self.forward_t(xt, beta, noise)
        return logits_t.transpose(1, 2), [h.transpose(1, 2) for h in hidden_t]

    def forward_t(self, xt: torch.Tensor, beta: float = 0.0, noise: NoiseFn | None = None
                  ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The same network on feature-major inputs xt [S, d_in, B] → logits [S, C, B], hidden [S, h_l, B]."""
        hidden = []
        n_layers = len(self.weights)
        for layer, (w, b) in enumerate(zip(self.weights, self.biases)):
            z = torch.baddbmm(b.transpose(1, 2), w.transpose(1, 2), xt)
            if layer == n_layers - 1:
                return z, hidden
            s = self.act(z)
            hidden.append(s)
            if beta > 0:
                eps = noise(layer, s) if noise is not None else torch.randn_like(s)
                xt = s + beta * eps
            else:
                xt = s
        raise AssertionError("unreachable")

    @torch.no_grad()
    def train_grads(self, xt: torch.Tensor, y: torch.Tensor, beta: float = 0.0, noise: NoiseFn | None = None
                    ) -> torch.Tensor:
        """Forward and hand-written backward of the mean cross-entropy per seed; sets every parameter's .grad.

        xt: feature-major inputs [S, d_in, B]; y: targets [S, B]. Returns the per-seed losses [S].
        Equivalent to autograd on `forward_t` (tested), and faster on the CPU for these narrow layers because
        it fuses the activation derivative and skips graph bookkeeping (benchmarks/bench_szt.py times the
        engine against a plain autograd loop).
        """
        inputs, outputs = [], []  # per layer: what it multiplied (noisy T_{l-1}) and its activation S_l
        t = xt
        n_layers = len(self.weights)
        for layer, (w, b) in enumerate(zip(self.weights, self.biases)):
            inputs.append(t)
            z = torch.baddbmm(b.transpose(1, 2), w.transpose(1, 2), t)
            if layer == n_layers - 1:
                break
            s = _activate(self.activation_name, z)
            outputs.append(s)
            t = s + beta * (noise(layer, s) if noise is not None else torch.randn_like(s)) if beta > 0 else s
        batch = z.shape[-1]
        if z.shape[1] == 2:  # closed form for two classes: loss = softplus(±(z1 − z0))
            diff = z[:, 1, :] - z[:, 0, :]
            sign = (1 - 2 * y).to(diff.dtype)
            loss = torch.nn.functional.softplus(sign * diff).mean(dim=1)
            g = (sign * torch.sigmoid(sign * diff)).div_(batch)
            dz = torch.stack([-g, g], dim=1)
        else:
            logp = torch.log_softmax(z, dim=1)
            loss = -logp.gather(1, y.unsqueeze(1)).squeeze(1).mean(dim=1)
            dz = logp.exp_()
            dz.scatter_add_(1, y.unsqueeze(1), torch.full_like(y, -1, dtype=dz.dtype).unsqueeze(1)).div_(batch)
        for layer in range(n_layers - 1, -1, -1):
            self.weights[layer].grad = torch.bmm(inputs[layer], dz.transpose(1, 2))
            self.biases[layer].grad = dz.sum(dim=-1).unsqueeze(1)
            if layer == 0:
                break
            dz = _activation_grad(self.activation_name, outputs[layer - 1], torch.bmm(self.weights[layer], dz))
        return loss

    def weight_matrices(self) -> list[torch.Tensor]:
        """The weight of every layer (hidden and output), [S, in, out] each: what SNR is computed on."""
        return list(self.weights)
