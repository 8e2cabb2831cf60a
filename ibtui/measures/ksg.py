"""Kraskov–Stögbauer–Grassberger k-nearest-neighbour mutual information, estimator 1 (Kraskov et al. 2004).

    I(A;B) = ψ(k) + ψ(N) − ⟨ψ(n_a + 1) + ψ(n_b + 1)⟩          (nats; returned in bits)

with the max-norm in every space: ε_i is the distance from point i to its k-th nearest neighbour in the
joint space (max of the two marginal distances), n_a(i) and n_b(i) count the points strictly closer than
ε_i in each marginal. For a discrete B (class labels) the label distance is 0 within a class and ∞ between
classes, which turns estimator 1 into Ross's (2014) discrete–continuous form: ε_i is the k-th neighbour
among i's own class, n_b(i) + 1 = N_{y_i}, and n_a(i) counts all points closer than ε_i.

Each variable is rescaled to unit variance first (Kraskov et al.: the max-norm mixes the two scales). Ties
(repeated or saturated points, discrete inputs) make ε_i = 0; as Kraskov et al. advise, a fixed
low-amplitude jitter (1e-10 of the unit scale, float64) breaks them. Everything is batched over
seeds ([S, N, d] → [S]); the N × N distances are built a block of rows at a time with torch.cdist.
"""
from __future__ import annotations

import math

import torch

K = 3  # Kraskov et al. 2004 use k = 2…4 throughout; 3 is the usual choice
JITTER = 1e-10  # relative amplitude of the tie-breaking noise (Kraskov et al. 2004, Sec. II)
BLOCK_BYTES = 64 * 2 ** 20  # memory for one block of distance rows, all seeds


def jittered(v: torch.Tensor, seed: int = 0, jitter: float = JITTER) -> torch.Tensor:
    """v [S, N, d] in float64, rescaled to unit variance (per seed, one scale for all d coordinates, so the
    variable's own metric is kept) plus fixed noise of `jitter` (deterministic, any device).

    The rescaling is Kraskov et al.'s (2004, Sec. IV): the max-norm joint distance mixes the two variables'
    scales, so without it the estimate would change with the units of either."""
    v = v.double()
    v = v - v.mean(dim=1, keepdim=True)
    scale = v.square().mean(dim=(1, 2), keepdim=True).sqrt().clamp_min(1e-300)
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(v.shape, generator=gen, dtype=torch.float64).to(v.device)
    return v / scale + jitter * noise


def max_norm_distances(v: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Max-norm distances [S, stop − start, N] from rows start:stop of v [S, N, d] to every row; self = ∞."""
    d = torch.cdist(v[:, start:stop], v, p=float("inf"))
    rows = torch.arange(stop - start, device=v.device)
    d[:, rows, rows + start] = float("inf")
    return d


def block_rows(s: int, n: int) -> int:
    """Rows of an N-wide distance block that fit BLOCK_BYTES for s seeds (three float64 blocks live at once)."""
    return max(1, min(n, BLOCK_BYTES // (8 * 3 * s * n)))


def _ksg_block(da: torch.Tensor, db: torch.Tensor, k: int) -> torch.Tensor:
    """Σ over a block of rows of ψ(n_a + 1) + ψ(n_b + 1) [S], from the two marginal distance blocks [S, c, N]."""
    eps = torch.maximum(da, db).topk(k, dim=-1, largest=False).values[..., -1:]  # topk: ~10× kthvalue
    n_a = (da < eps).sum(-1).double()
    n_b = (db < eps).sum(-1).double()
    return (torch.special.digamma(n_a + 1) + torch.special.digamma(n_b + 1)).sum(-1)


class _Labels:
    """What Ross's form needs of class ids [N]: same-class mask, N_{y_i}, k_i = min(k, N_{y_i} − 1), who counts."""

    def __init__(self, labels: torch.Tensor, k: int, device: torch.device):
        labels = labels.to(device).long()
        self.same = labels[:, None] == labels[None, :]
        self.counts = torch.bincount(labels)[labels].double()  # N_{y_i}
        self.k_i = torch.clamp(self.counts - 1, max=k)  # [N]
        self.keep = self.k_i >= 1
        self.k = k

    def block(self, d: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Σ over rows start:stop of ψ(k_i) + ψ(N) − ψ(N_{y_i}) − ψ(m_i) [S] (nats), from T's distances [S, c, N]."""
        s, n = d.shape[0], d.shape[-1]
        within = torch.where(self.same[start:stop], d, torch.full_like(d, float("inf")))
        kk = self.k_i[start:stop].clamp_min(1).long()
        nearest = within.topk(min(self.k, n), dim=-1, largest=False).values  # [S, c, k], ascending
        eps = nearest.gather(-1, (kk - 1).expand(s, -1).unsqueeze(-1))  # the k_i-th neighbour within the class
        m = (d < eps).sum(-1).double() + 1  # the points closer than ε_i, and the k-th neighbour itself
        term = (torch.special.digamma(self.k_i[start:stop]) + torch.special.digamma(torch.tensor(float(n)).double())
                - torch.special.digamma(self.counts[start:stop]) - torch.special.digamma(m))
        return torch.where(self.keep[start:stop], term, torch.zeros_like(term)).sum(-1)

    def mean_bits(self, total: torch.Tensor) -> torch.Tensor:
        return total / self.keep.sum().clamp_min(1).double() / math.log(2)


def _ksg_bits(total: torch.Tensor, k: int, n: int) -> torch.Tensor:
    digamma = lambda v: torch.special.digamma(torch.tensor(float(v), dtype=torch.float64))  # noqa: E731
    return (digamma(k) + digamma(n) - total / n) / math.log(2)


def ksg_mi(a: torch.Tensor, b: torch.Tensor, k: int = K, a_distances: torch.Tensor | None = None,
           jitter: float = JITTER) -> torch.Tensor:
    """KSG estimator 1 of I(A;B) [S] in bits, for continuous a [S, N, da] and b [S, N, db] (same N).

    a_distances: A's max-norm distances [S or 1, N, N] (self = ∞) if already known (the inputs X, the same at
    every snapshot), else computed from the jittered a."""
    s, n = b.shape[0], b.shape[1]
    if not 1 <= k < n:
        raise ValueError(f"k = {k} needs 1 ≤ k < N = {n}")
    b = jittered(b, seed=1, jitter=jitter)
    if a_distances is None:
        a = jittered(a, seed=0, jitter=jitter)
    total = torch.zeros(s, dtype=torch.float64, device=b.device)
    step = block_rows(s, n)
    for start in range(0, n, step):
        stop = min(n, start + step)
        da = (a_distances[:, start:stop] if a_distances is not None else max_norm_distances(a, start, stop))
        total += _ksg_block(da, max_norm_distances(b, start, stop), k)
    return _ksg_bits(total, k, n)


def ksg_mi_discrete(h: torch.Tensor, labels: torch.Tensor, k: int = K, jitter: float = JITTER) -> torch.Tensor:
    """KSG estimator 1 of I(T;Y) [S] in bits for a continuous h [S, N, d] and class ids labels [N] (Ross 2014).

    A point whose class has k or fewer members uses k_i = N_{y_i} − 1 neighbours; a class of one point adds
    nothing (ψ terms cancel) and is left out of the average, as Ross does."""
    s, n = h.shape[0], h.shape[1]
    h = jittered(h, seed=1, jitter=jitter)
    y = _Labels(labels, k, h.device)
    total = torch.zeros(s, dtype=torch.float64, device=h.device)
    step = block_rows(s, n)
    for start in range(0, n, step):
        stop = min(n, start + step)
        total += y.block(max_norm_distances(h, start, stop), start, stop)
    return y.mean_bits(total)


def ksg_layer(h: torch.Tensor, labels: torch.Tensor, x_distances: torch.Tensor, k: int = K,
              jitter: float = JITTER) -> tuple[torch.Tensor, torch.Tensor]:
    """(I(X;T), I(T;Y)) [S] in bits of one layer h [S, N, d] in one pass over its distances: `ksg_mi` against the
    inputs' distances x_distances [S or 1, N, N] and `ksg_mi_discrete` against labels [N], the same numbers."""
    s, n = h.shape[0], h.shape[1]
    if not 1 <= k < n:
        raise ValueError(f"k = {k} needs 1 ≤ k < N = {n}")
    h = jittered(h, seed=1, jitter=jitter)
    y = _Labels(labels, k, h.device)
    xt = torch.zeros(s, dtype=torch.float64, device=h.device)
    ty = torch.zeros_like(xt)
    step = block_rows(s, n)
    for start in range(0, n, step):
        stop = min(n, start + step)
        dt = max_norm_distances(h, start, stop)
        xt += _ksg_block(x_distances[:, start:stop], dt, k)
        ty += y.block(dt, start, stop)
    return _ksg_bits(xt, k, n), y.mean_bits(ty)
