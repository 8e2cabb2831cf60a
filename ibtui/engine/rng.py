"""Counter-based random numbers: a seed's stream depends only on (seed, purpose, counters).

Batch orders and noise must be drawn for all seeds at once on the device, yet each seed's numbers
must not depend on how many other seeds run beside it. A stateful generator cannot give both, so
we hash (seed, stream, epoch/step, element index) with an integer mixer (lowbias32-style, with
multipliers below 2**31 so that every product fits in int64) and turn the hash into uniforms.
"""
from __future__ import annotations

import math

import torch

_MASK = 0xFFFFFFFF

# Stream ids: one per purpose, so two purposes never share numbers.
STREAM_BATCH = 1
STREAM_NOISE = 2
STREAM_MEASURE = 3


def _mix(x: torch.Tensor) -> torch.Tensor:
    """Avalanche a uint32 value held in int64 (every intermediate stays below 2**63); x is overwritten."""
    x ^= x >> 16
    x.mul_(0x7FEB352D).bitwise_and_(_MASK)
    x ^= x >> 15
    x.mul_(0x5BD1E995).bitwise_and_(_MASK)
    x ^= x >> 16
    x.mul_(0x27D4EB2D).bitwise_and_(_MASK)
    x ^= x >> 15
    return x


Counter = int | torch.Tensor  # a Python int, or a 0-dim int64 tensor on the seeds' device (CUDA graphs)


def hash_bits(seeds: torch.Tensor, counters: tuple[Counter, ...], n: int) -> torch.Tensor:
    """uint32 hashes [S, n] (as int64) for seeds [S] at the given counters and element indices 0..n-1.

    A counter may be a 0-dim int64 tensor (the step counter of a captured CUDA graph lives on the device);
    it hashes exactly as the same Python int.
    """
    key = _mix(seeds.to(torch.int64) & _MASK)  # & makes a new tensor: the caller's seeds are not overwritten
    for c in counters:
        key = _mix(key ^ ((c if isinstance(c, torch.Tensor) else int(c)) & _MASK))
    key = _mix(key * 0x9E3779B1 & _MASK)  # spread the key so that key ^ idx differs in high bits too
    idx = torch.arange(n, device=seeds.device, dtype=torch.int64)
    # One more round after folding in the index: the mixer avalanches, so neighbouring indices decorrelate.
    return _mix(key[:, None] ^ idx[None, :])


def uniform(seeds: torch.Tensor, counters: tuple[Counter, ...], n: int) -> torch.Tensor:
    """Uniforms in (0, 1), shape [S, n], float32."""
    u = (hash_bits(seeds, counters, n).to(torch.float64) + 0.5) / 4294967296.0
    return u.to(torch.float32)


def permutations(seeds: torch.Tensor, counters: tuple[int, ...], n: int) -> torch.Tensor:
    """One random permutation of 0..n-1 per seed, shape [S, n], a function of (seed, counters) only.

    On a GPU: argsort of hashed keys, all seeds in one flat sort. On the CPU, where that sort costs
    more than training an epoch of the SZT net, each seed's permutation comes from torch.randperm with
    a generator seeded by the hash of (seed, counters): as independent of the other seeds, and
    cheaper (benchmarks/bench_szt.py times whole epochs).
    (So a seed's batch order differs between CPU and GPU runs, like its float rounding does.)
    """
    if seeds.device.type == "cpu":
        keys = hash_bits(seeds, counters, 1)[:, 0].tolist()
        out, g = torch.empty((len(keys), n), dtype=torch.int64), torch.Generator()
        for row, k in zip(out, keys):  # manual_seed resets g wholly: as a fresh generator per seed
            torch.randperm(n, generator=g.manual_seed(k), out=row)
        return out
    keys = hash_bits(seeds, counters, n)
    rows = torch.arange(keys.shape[0], device=keys.device, dtype=torch.int64)[:, None]
    order = torch.argsort((rows << 32 | keys).flatten(), stable=True).reshape(keys.shape)
    return order - rows * n


def normal(seeds: torch.Tensor, counters: tuple[Counter, ...], shape: tuple[int, ...]) -> torch.Tensor:
    """Standard normals of shape [S, *shape] by Box–Muller on two hashed uniform streams."""
    n = math.prod(shape)
    u1 = uniform(seeds, counters + (0x51ED,), n)
    u2 = uniform(seeds, counters + (0xB0A7,), n)
    z = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2)
    return z.reshape((seeds.shape[0],) + tuple(shape))


def noise_fn(seeds: torch.Tensor, counters: tuple[Counter, ...]):
    """The models' noise source: noise(layer, like) → standard normals shaped like `like` [S, …] (its dtype),
    drawn at counters + (layer,), so a layer's noise depends only on (seed, counters, layer)."""

    def noise(layer: int, like: torch.Tensor) -> torch.Tensor:
        return normal(seeds, counters + (layer,), tuple(like.shape[1:])).to(like.dtype)

    return noise
