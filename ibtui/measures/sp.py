"""Sample-propagation (SP) estimator of I(X;T) and I(T;Y) for noisy networks (Goldfeld et al., ICML 2019).

In a noisy net T_ℓ = S_ℓ + Z_ℓ, Z_ℓ ~ N(0, β²I), and with X uniform on m inputs every entropy in the
information plane is the entropy of a Gaussian mixture with known centres: h(T|X=x_i) of the k noiseless
images of x_i (k noisy passes of the earlier layers), h(T) of all m·k of them pooled, h(T|Y=y) of the
class-pooled ones (Goldfeld et al. 2019, the noisy-network framework and its SP estimator). SP estimates
each mixture entropy by Monte Carlo: draw t from the mixture (a centre plus noise) and average −log2 g(t),
with g evaluated over all centres by logsumexp (the Monte Carlo mixture entropy also used by Kolchinsky,
Tracey & Wolpert's nonlinear information bottleneck, 2019). Pairwise sums come from
`ibtui.measures.kde.gaussian_kernel_log_sums` (exact distances, chunked, float32-safe).
"""
from __future__ import annotations

import math

import torch

from ibtui.measures.discrete import LN2
from ibtui.measures.kde import gaussian_kernel_log_sums, kernel_log_sums_attention

_LOG_2PI = math.log(2.0 * math.pi)


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _randn(shape, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(shape, generator=generator, device=like.device, dtype=like.dtype)


def mixture_entropy_mc(
    centers: torch.Tensor,
    beta: float,
    n_mc: int,
    weights_mask: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    chunk_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(h, se) in bits [S] of g(t) = Σ_i w_i N(t; c_i, β²I), by Monte Carlo (Goldfeld et al. 2019, the SP estimator).

    centers [S, n, d]; weights_mask [n] or [S, n] (bool or non-negative; None = equal weights,
    normalised per seed). For every centre, n_mc draws t = c_i + z, z ~ N(0, β²I); then
    ĥ = Σ_i w_i · mean_j [−log2 g(c_i + z_ij)] (stratified by centre, unbiased).
    se² = Σ_i w_i² s_i² / n_mc with s_i² the sample variance of the n_mc values of centre i
    (n_mc = 1: the between-centre variance, which over-covers). Cost: S·n²·n_mc kernel terms.
    """
    x = centers.to(_compute_dtype(centers))
    s, n, d = x.shape
    if weights_mask is None:
        w = torch.ones(s, n, dtype=x.dtype, device=x.device)
    else:
        w = weights_mask.to(device=x.device, dtype=x.dtype).expand(s, n)
    w = w / w.sum(dim=-1, keepdim=True)
    pts = (x.unsqueeze(2) + beta * _randn((s, n, n_mc, d), x, generator)).reshape(s, n * n_mc, d)
    total, _ = gaussian_kernel_log_sums(pts, x, [1.0 / (2.0 * beta**2)], log_weights=w.log(), chunk_size=chunk_size)
    log_g = total[0] - 0.5 * d * (_LOG_2PI + 2.0 * math.log(beta))
    f = (-log_g / LN2).view(s, n, n_mc)
    f = torch.where(w.unsqueeze(-1) > 0, f, torch.zeros_like(f))  # draws of weightless centres are unused
    fbar = f.mean(dim=-1)
    h = (w * fbar).sum(dim=-1)
    if n_mc >= 2:
        var = (w**2 * f.var(dim=-1)).sum(dim=-1) / n_mc
    else:
        n_eff = (w > 0).sum(dim=-1).to(x.dtype)
        var = (w**2 * (fbar - h.unsqueeze(-1)) ** 2).sum(dim=-1) * n_eff / (n_eff - 1)
    return h, var.sqrt()


def pooled_log_sums(points: torch.Tensor, centers: torch.Tensor, inv: float, ref: torch.Tensor,
                    chunk_size: int | None, groups: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log Σ_j exp(−inv‖t_a − c_j‖²) over all centres and over the point's class: the pooled mixtures' sums.

    On the CPU by fused attention in float64 (`kernel_log_sums_attention`; 4× faster than exact pairwise
    distances at the noisy SZT scenarios' size and equal to them within 2e-6 in the log,
    benchmarks/bench_estimators.py on a 2-core CPU); float64 because SP's kernels are narrow (inv = 1/(2β²)
    = 5000 at β = 0.01), where float32 dot-product distances err by ~4e-3 in the log. On a GPU by exact
    pairwise distances in float32 (float64 attention has no fused kernel there).
    """
    if points.device.type != "cpu":
        total, own = gaussian_kernel_log_sums(points, centers, [inv], chunk_size=chunk_size, **groups)
        return total[0], (own[0] if own is not None else None)
    mu = centers.mean(dim=1, keepdim=True)  # centred: smaller norms in the dot products, the same distances
    total, own = kernel_log_sums_attention(
        (points - mu).double(), (centers - mu).double(), inv, ref.double(), groups.get("point_groups"),
        groups.get("centre_groups"), groups.get("n_groups"), chunk_size)
    return total.to(points.dtype), (own.to(points.dtype) if own is not None else None)


def _mean_se(f: torch.Tensor, population: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard error of per-point values f [S, M, n_mc]: M inputs drawn without replacement from
    `population` (all of them when M = population), n_mc i.i.d. Monte Carlo draws each.

    Two-stage sampling (Cochran, Sampling Techniques, 1977, §10.2): var = (1 − M/m)·S_b²/M + s_w²/(n_mc·M), with
    s_w² the mean within-input variance of the draws and S_b² = s²(f̄_i) − s_w²/n_mc the spread of the inputs'
    own values (clamped at 0). All inputs: only the Monte Carlo term; a subset: it also counts which inputs were
    drawn. n_mc = 1 (no within-input estimate): s²(f̄_i)/M, which over-covers when all inputs are used.
    """
    m, n_mc = f.shape[1], f.shape[2]
    fbar = f.mean(dim=-1)
    between = fbar.var(dim=-1) if m >= 2 else torch.zeros_like(fbar[:, 0])
    if n_mc >= 2:
        within = f.var(dim=-1).mean(dim=-1)
        fpc = max(0.0, 1.0 - m / population)
        var = within / (n_mc * m) + fpc * (between - within / n_mc).clamp_min(0.0) / m
    else:
        var = between / m
    return fbar.mean(dim=-1), var.sqrt()


def sp_mutual_information(
    cond_centers: torch.Tensor,
    labels: torch.Tensor | None,
    beta: float,
    n_mc: int,
    generator: torch.Generator | None = None,
    n_points: int | None = None,
    chunk_size: int | None = None,
    points: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """SP estimates of I(X;T) and I(T;Y) in bits [S], with Monte Carlo standard errors (Goldfeld et al. 2019).

    cond_centers [S, m, k, d]: cond_centers[:, i] are the k noiseless images S_ℓ of input x_i from k
    independent noisy passes of the earlier layers (all equal for the first hidden layer: detected, and
    then one copy is used — the mixture is the same). labels [m] int64 or None. With g_i the mixture of
    x_i's k centres, g = mean_i g_i (all m·k centres) and g_y = mean_{i: y_i=y} g_i:
        I(X;T) = h(T) − mean_i h(T|X=x_i) = E_i E_{t~g_i}[log2 g_i(t) − log2 g(t)]
        I(T;Y) = h(T) − Σ_y p(y) h(T|Y=y) = E_i E_{t~g_i}[log2 g_{y_i}(t) − log2 g(t)]
    For each input (or each input of `points` [M], a subset the caller fixes — the same at every snapshot —
    or of `n_points` inputs drawn here at random without replacement; shared by the seeds of the call),
    n_mc points t = c + z are drawn, c uniform among its k centres, z ~ N(0, β²I); every term
    is evaluated at the same points, so the MI is the mean of per-point differences and its SE is the
    SE of those differences (this includes the correlation between h(T) and the conditional terms,
    which is what makes the MI much more precise than either entropy). SE (`_mean_se`): with all inputs,
    the Monte Carlo draws only; with a subset, the draws and the sampling of the subset from all m inputs
    (finite-population corrected). Also returned: h_t, h_t_x (mean_i
    h(T|X=x_i)), h_t_y (Σ_y p(y) h(T|Y=y)) in bits, each with *_se.

    Cost: S·M·n_mc·m·k kernel terms (d-dim distance + exp) for the pooled mixtures, M = n_points or m;
    S·M·n_mc·k for the m conditional mixtures (one batched op). Memory: two blocks of ≈ 2^24 floats.
    Example: m=4096, k=8, n_mc=4, S=10, d=5 is 5.5e9 terms, ≈ 2 min on 2 busy CPU cores (25 s with
    n_points=512, or for the first layer, where k collapses to 1). The generator must be on the input's device.
    """
    x = cond_centers.to(_compute_dtype(cond_centers))
    s, m, k, d = x.shape
    if k > 1 and bool((x == x[:, :, :1]).all()):
        x, k = x[:, :, :1], 1
    if points is not None:
        idx = points.to(device=x.device, dtype=torch.int64)
    elif n_points is None or n_points >= m:
        idx = torch.arange(m, device=x.device)
    else:
        perm = torch.randperm(m, generator=generator, device=generator.device if generator else "cpu")
        idx = perm[:n_points].to(x.device)
    mm = idx.numel()
    xe = x.index_select(1, idx)  # [S, M, k, d]
    if k > 1:
        comp = torch.randint(k, (s, mm, n_mc, 1), generator=generator, device=x.device).expand(-1, -1, -1, d)
        base = xe.gather(2, comp)
    else:
        base = xe.expand(-1, -1, n_mc, -1)
    z = _randn((s, mm, n_mc, d), x, generator)
    t = base + beta * z  # [S, M, n_mc, d]
    inv = 1.0 / (2.0 * beta**2)
    const = 0.5 * d * (_LOG_2PI + 2.0 * math.log(beta))  # log normaliser of N(0, β²I)

    # Conditional mixtures g_i, all m at once: [S·M, n_mc, k].
    sq = torch.cdist(t.reshape(s * mm, n_mc, d), xe.reshape(s * mm, k, d), compute_mode="donot_use_mm_for_euclid_dist")
    log_gi = torch.logsumexp(sq.square_().mul_(-inv), dim=-1).view(s, mm, n_mc) - math.log(k) - const

    # Pooled mixtures g and g_y, at the same points.
    kw = {}
    if labels is not None:
        labels = labels.to(device=x.device, dtype=torch.int64)
        n_cls = int(labels.max()) + 1
        kw = dict(
            point_groups=labels[idx].repeat_interleave(n_mc),
            centre_groups=labels.repeat_interleave(k),
            n_groups=n_cls,
        )
    ref = (beta * z).square().sum(-1).mul_(-inv).reshape(s, mm * n_mc)  # each draw's own centre's log-kernel
    total, own = pooled_log_sums(t.reshape(s, mm * n_mc, d), x.reshape(s, m * k, d), inv, ref, chunk_size, kw)
    log_g = (total - math.log(m * k) - const).view(s, mm, n_mc)

    out: dict[str, torch.Tensor] = {}

    def put(name: str, f: torch.Tensor) -> None:
        out[name], out[name + "_se"] = _mean_se(f / LN2, m)

    put("mi_xt", log_gi - log_g)
    put("h_t", -log_g)
    put("h_t_x", -log_gi)
    if labels is not None:
        log_my = torch.bincount(labels, minlength=n_cls).to(x.dtype).mul_(k).log_()[labels[idx]]  # [M]
        log_gy = (own.view(s, mm, n_mc) - log_my.view(1, -1, 1)) - const
        put("mi_ty", log_gy - log_g)
        put("h_t_y", -log_gy)
    return out
