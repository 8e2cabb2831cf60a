"""ResNet-32 for CIFAR (He et al. 2016, §4.2), for many seeds at once.

Why this module exists: paper 2 follows the gradient SNR and the Gaussian bound of "ResNet-32 …
standard architecture (including ReLU activation functions as described in (He et al., 2016))" on
CIFAR-10/100, averaged over 50 runs (Shwartz-Ziv, Painsky & Tishby 2019, experiments). Running those
runs side by side needs the network batched over seeds.

Architecture (He et al. 2016, §4.2, n = (depth − 2)/6 = 5 for depth 32): conv 3×3 3→16, batch norm,
ReLU; three stages of n basic blocks with 16, 32, 64 channels on 32×32, 16×16, 8×8 maps (the first
block of stages 2 and 3 has stride 2); global average pooling; fully connected 64→n_classes. A basic
block is conv3×3-BN-ReLU-conv3×3-BN, plus the shortcut, then ReLU. Shortcuts are **option A** (the
one He et al. use on CIFAR): identity, and where the shape changes, a stride-2 subsampling padded
with zero channels (half of the new channels before, half after, as in the common CIFAR code), so
shortcuts add no parameters. One seed has 464,154 parameters at 10 classes ("0.46M" in He et al.).

Seeds: all S seeds run in one call. Every parameter and batch-norm buffer has a leading seed
dimension; each convolution is one grouped convolution (groups = S, seeds stacked on the channels);
batch norm normalises each seed's channels with their own batch statistics and keeps running
statistics per seed. Seed s draws its parameters from torch.Generator().manual_seed(s), so a seed's
initialisation does not depend on the other seeds. Initialisation: conv weights He-normal
N(0, 2/fan_in) (He et al. 2015, as He et al. 2016 use); batch norm γ = 1, β = 0; the final layer
PyTorch's default U(−1/√fan_in, 1/√fan_in) for weight and bias.

Measured representations (ibtui's choice): the output of each stage (after its last block's ReLU),
global-average-pooled to [S, B, 16 | 32 | 64] by default (`pooled=False` gives the full maps, d =
16384, 8192, 4096). `weight_matrices` returns the last convolution of each stage (conv2 of its
last block), [S, C, C, 3, 3], then the output layer's weight (the engine measures the output too).
Noisy net: with β > 0, β·ε is added to each stage's full output map (not inside blocks); the
tensor handed to `noise` is that map flattened, [S, B, C·H·W]. A pooled
representation therefore carries noise of standard deviation β/√(H·W), given per layer by
`rep_noise_factor`.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ibtui.models.cnn import stack_seeds
from ibtui.scenario import RESNET_STAGE_CHANNELS

NoiseFn = Callable[[int, Tensor], Tensor]

STAGE_CHANNELS = RESNET_STAGE_CHANNELS


class SeedBatchNorm2d(nn.Module):
    """Batch norm of seed-stacked maps [B, S·C, H, W]: per seed and channel, with per-seed running stats.

    γ, β, running mean and variance are [S, C]; F.batch_norm on their flattened views updates the
    running statistics in place (momentum 0.1, eps 1e-5, PyTorch's defaults).
    """

    def __init__(self, n_seeds: int, channels: int, device: torch.device | str | None = None) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n_seeds, channels, device=device))
        self.bias = nn.Parameter(torch.zeros(n_seeds, channels, device=device))
        self.register_buffer("running_mean", torch.zeros(n_seeds, channels, device=device))
        self.register_buffer("running_var", torch.ones(n_seeds, channels, device=device))
        self.momentum, self.eps = 0.1, 1e-5

    def forward(self, h: Tensor) -> Tensor:
        return F.batch_norm(h, self.running_mean.view(-1), self.running_var.view(-1), self.weight.view(-1),
                            self.bias.view(-1), self.training, self.momentum, self.eps)


def _conv(h: Tensor, w: Tensor, stride: int = 1) -> Tensor:
    """3×3 grouped conv (pad 1, no bias) of [B, S·Cin, H, W] with w [S, Cout, Cin, 3, 3]."""
    return F.conv2d(h, w.reshape(-1, *w.shape[2:]), stride=stride, padding=1, groups=w.shape[0])


class SeedBasicBlock(nn.Module):
    """conv-BN-ReLU-conv-BN + option-A shortcut, then ReLU; on seed-stacked maps [B, S·C, H, W]."""

    def __init__(self, n_seeds: int, c_in: int, c_out: int, stride: int,
                 device: torch.device | str | None = None) -> None:
        super().__init__()
        self.n_seeds, self.c_in, self.c_out, self.stride = n_seeds, c_in, c_out, stride
        self.conv1_w = nn.Parameter(torch.empty(n_seeds, c_out, c_in, 3, 3, device=device))
        self.bn1 = SeedBatchNorm2d(n_seeds, c_out, device)
        self.conv2_w = nn.Parameter(torch.empty(n_seeds, c_out, c_out, 3, 3, device=device))
        self.bn2 = SeedBatchNorm2d(n_seeds, c_out, device)

    def shortcut(self, h: Tensor) -> Tensor:
        """Option A: identity, or stride-2 subsampling with (c_out − c_in)/2 zero channels on each side, per seed."""
        if self.stride == 1 and self.c_in == self.c_out:
            return h
        h = h[:, :, :: self.stride, :: self.stride]
        B, _, H, W = h.shape
        extra = self.c_out - self.c_in
        h = F.pad(h.reshape(B, self.n_seeds, self.c_in, H, W), (0, 0, 0, 0, extra // 2, extra - extra // 2))
        return h.reshape(B, self.n_seeds * self.c_out, H, W)

    def forward(self, h: Tensor) -> Tensor:
        out = torch.relu(self.bn1(_conv(h, self.conv1_w, self.stride)))
        out = self.bn2(_conv(out, self.conv2_w))
        return torch.relu(out + self.shortcut(h))


class SeedResNet(nn.Module):
    """CIFAR ResNet (depth 6n+2, default 32) for S seeds: x [S, B, 3, 32, 32] → logits, stage representations."""

    def __init__(self, n_seeds: int, seeds: list[int], *, depth: int = 32, n_classes: int = 10,
                 pooled: bool = True, in_channels: int = 3, image_size: int = 32,
                 device: torch.device | str | None = None) -> None:
        super().__init__()
        seeds = [int(s) for s in seeds]
        if n_seeds != len(seeds) or n_seeds < 1:
            raise ValueError(f"n_seeds = {n_seeds} but {len(seeds)} seeds were given")
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"depth must be 6n + 2 with n ≥ 1 (20, 32, 44, 56, 110, …), not {depth}")
        n = (depth - 2) // 6
        self.n_seeds, self.seeds, self.depth, self.n_classes, self.pooled = n_seeds, seeds, depth, n_classes, pooled
        self.stem_w = nn.Parameter(torch.empty(n_seeds, STAGE_CHANNELS[0], in_channels, 3, 3, device=device))
        self.stem_bn = SeedBatchNorm2d(n_seeds, STAGE_CHANNELS[0], device)
        stages, c_in = [], STAGE_CHANNELS[0]
        for i, c in enumerate(STAGE_CHANNELS):
            blocks = [SeedBasicBlock(n_seeds, c_in if b == 0 else c, c, 2 if (i > 0 and b == 0) else 1, device)
                      for b in range(n)]
            stages.append(nn.Sequential(*blocks))
            c_in = c
        self.stages = nn.ModuleList(stages)
        self.fc_w = nn.Parameter(torch.empty(n_seeds, STAGE_CHANNELS[-1], n_classes, device=device))
        self.fc_b = nn.Parameter(torch.empty(n_seeds, n_classes, device=device))
        sides = [image_size, image_size // 2, image_size // 4]
        self.layer_widths = tuple(c if pooled else c * s * s for c, s in zip(STAGE_CHANNELS, sides))
        self.rep_noise_factor = tuple(1.0 / s if pooled else 1.0 for s in sides)  # std of pooled noise / β
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        """Seed s fills slice s of every weight from its own generator, in registration order."""
        weights = [(name, p) for name, p in self.named_parameters() if name.endswith("_w") or name == "fc_b"]
        for i, s in enumerate(self.seeds):
            gen = torch.Generator().manual_seed(s)
            for name, p in weights:
                shape = tuple(p.shape[1:])
                if name in ("fc_w", "fc_b"):
                    bound = 1.0 / math.sqrt(STAGE_CHANNELS[-1])
                    draw = (torch.rand(shape, generator=gen) * 2.0 - 1.0) * bound
                else:  # conv [Cout, Cin, 3, 3]: He-normal, fan_in = Cin·9
                    draw = torch.randn(shape, generator=gen) * math.sqrt(2.0 / (shape[1] * shape[2] * shape[3]))
                p[i].copy_(draw)

    @property
    def hidden_widths(self) -> list[int]:
        """d_l of each returned stage representation (as BatchedMLP.hidden_widths)."""
        return list(self.layer_widths)

    def forward(self, x: Tensor, beta: float = 0.0,
                noise: NoiseFn | None = None) -> tuple[Tensor, list[Tensor]]:
        """x [S, B, C, H, W] (or [B, C, H, W], the same images for every seed) →
        (logits [S, B, n_classes], [stage-1, stage-2, stage-3 outputs] each [S, B, d_l]).

        Representations are noiseless (before their own noise); layer indices passed to `noise` are
        0-based stage numbers, and ε must have the shape of the flattened full map [S, B, C·H·W].
        Call .eval() before measuring: in training mode batch norm uses (and updates) batch statistics.
        """
        S = self.n_seeds
        h = stack_seeds(x, S)
        B = h.shape[0]
        h = torch.relu(self.stem_bn(_conv(h, self.stem_w)))
        reps: list[Tensor] = []
        for layer, stage in enumerate(self.stages):
            h = stage(h)  # [B, S·C, H, W]
            _, _, H, W = h.shape
            if self.pooled:
                reps.append(h.reshape(B, S, -1, H * W).mean(dim=3).transpose(0, 1))
            else:
                reps.append(h.reshape(B, S, -1).transpose(0, 1))
            if beta > 0:
                flat = h.reshape(B, S, -1).transpose(0, 1)
                eps = noise(layer, flat) if noise is not None else torch.randn_like(flat)
                if eps.shape != flat.shape:
                    raise ValueError(f"noise for layer {layer} has shape {tuple(eps.shape)}, "
                                     f"expected {tuple(flat.shape)}")
                h = h + beta * eps.transpose(0, 1).reshape(h.shape)
        z = h.reshape(B, S, STAGE_CHANNELS[-1], -1).mean(dim=3).transpose(0, 1)  # [S, B, 64]
        logits = torch.baddbmm(self.fc_b.unsqueeze(1), z, self.fc_w)
        return logits, reps

    def weight_matrices(self) -> list[Tensor]:
        """One weight per measured layer, then the output layer's (as BatchedMLP): the last conv of each
        stage (conv2 of its last block, [S, C, C, 3, 3]) and fc_w [S, 64, n_classes]; the parameters themselves."""
        return [stage[-1].conv2_w for stage in self.stages] + [self.fc_w]
