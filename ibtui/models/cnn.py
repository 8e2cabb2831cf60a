"""The noisy four-layer MNIST CNN of Goldfeld et al. (ICML 2019), for many seeds at once.

Why this module exists: paper 1 trains "four-layer convolutional neural networks (CNNs) on MNIST"
and measures I(X;T) of their noisy versions (Goldfeld et al. 2019, MNIST experiment). The paper's layer sizes were not
found, so the design below is **ibtui's choice**, a common small MNIST CNN:

    layer 1  conv 5×5, 1→32 channels, pad 2, activation, max-pool 2    → T1: 32×14×14 = 6272
    layer 2  conv 5×5, 32→64 channels, pad 2, activation, max-pool 2   → T2: 64×7×7   = 3136
    layer 3  fully connected 3136→128, activation                       → T3: 128
    layer 4  fully connected 128→10 (logits, output layer)

The activation is tanh by default (bounded, like the paper-2/3 nets; `activation="relu"` is the
other choice). Noisy net (Goldfeld et al. 2019, Sec. 2): with β > 0, T_l = S_l + β·ε_l is added to each hidden
layer's output after its nonlinearity (and after its pooling, which is part of the layer), in
training and measurement; the input and the logits get no noise. `forward` returns the noiseless
S_l of each hidden layer, flattened to [S, B, d_l]; later layers see the noisy T_l.

All S seeds run together: every parameter has a leading seed dimension, the convolutions are one
grouped convolution each (groups = S, seeds stacked along the channels) and the dense layers one
batched matmul each. Seed s draws its parameters from torch.Generator().manual_seed(s), so a
seed's initialisation does not depend on the other seeds. Initialisation is PyTorch's default for
Conv2d/Linear: weights and biases U(−1/√fan_in, 1/√fan_in).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NoiseFn = Callable[[int, Tensor], Tensor]

_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"tanh": torch.tanh, "relu": torch.relu}


def _uniform(gen: torch.Generator, shape: tuple[int, ...], fan_in: int) -> Tensor:
    """U(−1/√fan_in, 1/√fan_in) drawn from `gen` (PyTorch's default Conv2d/Linear initialisation)."""
    bound = 1.0 / math.sqrt(fan_in)
    return (torch.rand(shape, generator=gen) * 2.0 - 1.0) * bound


class SeedCNN(nn.Module):
    """Four-layer MNIST CNN for S seeds: x [S, B, 1, 28, 28] → logits [S, B, n_classes], hidden reps.

    Parameters (all [S, ...]): conv1_w [S, c1, 1, 5, 5], conv2_w [S, c2, c1, 5, 5],
    fc_w [S, c2·7·7, hidden] and out_w [S, hidden, n_classes] (dense weights are [seeds, in, out]),
    each with its bias.
    """

    def __init__(self, n_seeds: int, seeds: list[int], *, channels: tuple[int, int] = (32, 64),
                 hidden: int = 128, n_classes: int = 10, activation: str = "tanh", in_channels: int = 1,
                 image_size: int = 28, kernel: int = 5, device: torch.device | str | None = None) -> None:
        super().__init__()
        seeds = [int(s) for s in seeds]
        if n_seeds != len(seeds) or n_seeds < 1:
            raise ValueError(f"n_seeds = {n_seeds} but {len(seeds)} seeds were given")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, not {activation!r}")
        if image_size % 4:
            raise ValueError(f"image_size must be divisible by 4 (two 2×2 poolings), not {image_size}")
        c1, c2 = channels
        side = image_size // 4
        self.n_seeds, self.seeds = n_seeds, seeds
        self.activation, self.n_classes, self.kernel = activation, n_classes, kernel
        self.in_channels, self.image_size = in_channels, image_size
        self.layer_widths = (c1 * (image_size // 2) ** 2, c2 * side * side, hidden)  # hidden layers' d_l
        k2 = kernel * kernel
        shapes = [  # (name, shape, fan_in), in drawing order
            ("conv1_w", (c1, in_channels, kernel, kernel), in_channels * k2), ("conv1_b", (c1,), in_channels * k2),
            ("conv2_w", (c2, c1, kernel, kernel), c1 * k2), ("conv2_b", (c2,), c1 * k2),
            ("fc_w", (c2 * side * side, hidden), c2 * side * side), ("fc_b", (hidden,), c2 * side * side),
            ("out_w", (hidden, n_classes), hidden), ("out_b", (n_classes,), hidden),
        ]
        per_seed: dict[str, list[Tensor]] = {name: [] for name, _, _ in shapes}
        for s in seeds:
            gen = torch.Generator().manual_seed(s)
            for name, shape, fan_in in shapes:
                per_seed[name].append(_uniform(gen, shape, fan_in))
        for name, _, _ in shapes:
            self.register_parameter(name, nn.Parameter(torch.stack(per_seed[name]).to(device)))

    # ----------------------------------------------------------------------------------------
    def _conv(self, h: Tensor, w: Tensor, b: Tensor) -> Tensor:
        """Grouped conv of seed-stacked maps h [B, S·Cin, H, W] with w [S, Cout, Cin, k, k] → [B, S·Cout, H, W]."""
        return F.conv2d(h, w.reshape(-1, *w.shape[2:]), b.reshape(-1), padding=self.kernel // 2,
                        groups=self.n_seeds)

    def _noisy(self, layer: int, rep: Tensor, beta: float, noise: NoiseFn | None) -> Tensor:
        """β·ε for hidden layer `layer` with ε = noise(layer, rep) or randn_like(rep), same shape as rep [S, B, d]."""
        eps = noise(layer, rep) if noise is not None else torch.randn_like(rep)
        if eps.shape != rep.shape:
            raise ValueError(f"noise for layer {layer} has shape {tuple(eps.shape)}, expected {tuple(rep.shape)}")
        return beta * eps

    @property
    def hidden_widths(self) -> list[int]:
        """d_l of each returned hidden representation (as BatchedMLP.hidden_widths)."""
        return list(self.layer_widths)

    def forward(self, x: Tensor, beta: float = 0.0,
                noise: NoiseFn | None = None) -> tuple[Tensor, list[Tensor]]:
        """x [S, B, C, H, W] (or [B, C, H, W], the same images for every seed) →
        (logits [S, B, n_classes], [S_1, S_2, S_3] each [S, B, d_l], noiseless).

        Layer indices passed to `noise` are 0-based positions in the returned list, and ε must have
        the shape of the tensor passed, [S, B, d_l]. The returned conv representations are views in
        (S, B, C·H·W) order (not contiguous).
        """
        S = self.n_seeds
        h = stack_seeds(x, S)  # [B, S·C, H, W]
        B = h.shape[0]
        act = _ACTIVATIONS[self.activation]
        reps: list[Tensor] = []
        for layer, (w, b) in enumerate(((self.conv1_w, self.conv1_b), (self.conv2_w, self.conv2_b))):
            h = F.max_pool2d(act(self._conv(h, w, b)), 2)  # [B, S·C, H', W']
            rep = h.reshape(B, S, -1).transpose(0, 1)  # [S, B, C·H'·W'] view
            reps.append(rep)
            if beta > 0:
                h = h + self._noisy(layer, rep, beta, noise).transpose(0, 1).reshape(h.shape)
        z = h.reshape(B, S, -1).transpose(0, 1)  # [S, B, c2·7·7]
        z = act(torch.baddbmm(self.fc_b.unsqueeze(1), z, self.fc_w))  # [S, B, hidden]
        reps.append(z)
        if beta > 0:
            z = z + self._noisy(2, z, beta, noise)
        logits = torch.baddbmm(self.out_b.unsqueeze(1), z, self.out_w)
        return logits, reps

    def weight_matrices(self) -> list[Tensor]:
        """The weight of every layer, hidden then output (as BatchedMLP): conv1_w, conv2_w, fc_w, out_w.

        These are the parameters themselves ([S, ...], with .grad), what each layer's SNR is computed on.
        """
        return [self.conv1_w, self.conv2_w, self.fc_w, self.out_w]


def stack_seeds(x: Tensor, n_seeds: int) -> Tensor:
    """[S, B, C, H, W] → [B, S·C, H, W] (seeds stacked on the channels); [B, C, H, W] is repeated for every seed."""
    if x.dim() == 4:
        return x.repeat(1, n_seeds, 1, 1)
    if x.dim() != 5 or x.shape[0] != n_seeds:
        raise ValueError(f"input of shape {tuple(x.shape)}: expected [S={n_seeds}, B, C, H, W] or [B, C, H, W]")
    S, B, C, H, W = x.shape
    return x.transpose(0, 1).reshape(B, S * C, H, W)
