"""Kolchinsky–Tracey pairwise-distance bounds on I(X;T) and I(T;Y) (the "KDE" estimator of Saxe et al.).

A hidden layer h(x) is read as the noisy variable T = h(X) + Z with Z ~ N(0, σ²I) and X uniform
on the N measured points. T is then a mixture of N Gaussians, and its entropy is bounded by
pairwise distances between the centres (Kolchinsky & Tracey, Entropy 2017, §4):
the KL upper bound uses the kernel exp(−‖h_i−h_j‖²/(2σ²)), the Bhattacharyya lower bound
exp(−‖h_i−h_j‖²/(8σ²)), as Saxe et al. (ICLR 2018) apply them to hidden layers.

The pairwise sums are also the core of the sample-propagation estimator (`ibtui.measures.sp`),
so `gaussian_kernel_log_sums` lives here and is shared.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch

from ibtui.measures import native
from ibtui.measures.discrete import LN2
from ibtui.measures.kernel_tiles import self_kernel_log_sums_tiled


# Elements of one [S, rows, cols] kernel block; two such blocks are alive at once (≈ 128 MiB float32).
# A GPU gets blocks 8× larger: fewer, longer kernels (≈ 1 GiB alive).
CHUNK_ELEMENTS = 1 << 24
CHUNK_ELEMENTS_CUDA = 1 << 27

# A group sum below this (after shifting by the row maximum) is recomputed exactly by a masked
# logsumexp: float32 loses precision in subnormals (< 1.2e-38).
_UNDERFLOW = 1e-30


def rows_per_chunk(n_seeds: int, n_cols: int, chunk_size: int | None, device: torch.device | None = None) -> int:
    """Rows of a [S, rows, n_cols] block: `chunk_size` if given, else what fits in the device's block size."""
    if chunk_size is not None:
        return max(1, int(chunk_size))
    budget = CHUNK_ELEMENTS_CUDA if device is not None and device.type == "cuda" else CHUNK_ELEMENTS
    return max(1, budget // max(1, n_seeds * n_cols))


def _squarings(scale: float, prev: float | None) -> int | None:
    """j if scale == 2^j · prev for j in 1..3, else None."""
    if prev is None or prev <= 0:
        return None
    j = round(math.log2(scale / prev))
    return j if 1 <= j <= 3 and math.isclose(scale, prev * 2.0**j, rel_tol=1e-12) else None


def gaussian_kernel_log_sums(
    points: torch.Tensor,
    centers: torch.Tensor,
    scales: Sequence[float],
    *,
    log_weights: torch.Tensor | None = None,
    point_groups: torch.Tensor | None = None,
    centre_groups: torch.Tensor | None = None,
    n_groups: int | None = None,
    chunk_size: int | None = None,
    exact_distances: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log Σ_j w_j exp(−s·‖t_a − c_j‖²) for every point t_a and every scale s.

    points [S, M, d], centers [S, n, d]; log_weights [n] or [S, n] (default 0: w_j = 1).
    Returns (total [K, S, M], own [K, S, M] or None) for the K scales: `total` sums over all
    centres; `own` (when point_groups [M] and centre_groups [n] are given, int64 shared by all
    seeds) sums over the centres in the point's own group only (one matmul with the groups' one-hot
    matrix; rows whose group sum underflows are redone by a masked logsumexp).
    Squared distances are exact differences (torch.cdist without the matmul shortcut), so close
    pairs keep full float32 precision; `exact_distances=False` takes ‖t‖² + ‖c‖² − 2t·c from one
    batched matmul instead (cheaper; absolute error ~1e-6 on a squared distance, which
    is negligible against a kernel width 2σ² ≥ 1e-3 but not against SP's 2β² at small β).
    Chunked over points; no loop over samples or seeds.
    """
    s, m, _ = points.shape
    n = centers.shape[1]
    dtype = points.dtype
    grouped = point_groups is not None
    if grouped:
        if centre_groups is None:
            raise ValueError("point_groups needs centre_groups")
        c = int(n_groups) if n_groups is not None else int(max(point_groups.max(), centre_groups.max())) + 1
        onehot = torch.nn.functional.one_hot(centre_groups.to(points.device), c).to(dtype)
        onehot = torch.cat([onehot, onehot.new_ones(n, 1)], dim=1)  # [n, C+1]: last column = total
        pg = point_groups.to(points.device)
    lw = None
    if log_weights is not None:
        lw = log_weights.to(device=points.device, dtype=dtype)
        lw = lw.unsqueeze(-2) if lw.dim() == 2 else lw  # [S,1,n] or [n]
    total = torch.empty(len(scales), s, m, dtype=dtype, device=points.device)
    own = torch.empty_like(total) if grouped else None
    under = torch.zeros(total.shape, dtype=torch.bool, device=points.device) if grouped else None
    # Ascending scales; a scale 2^j times the previous one (KDE: 8σ² then 2σ², j = 2) reuses its
    # kernel by j in-place squarings instead of a new exp (exp dominates the cost).
    order = sorted(range(len(scales)), key=lambda i: scales[i])
    rows = rows_per_chunk(s, n, chunk_size, points.device)
    c_norm2 = None if exact_distances else (centers * centers).sum(-1).unsqueeze(1)  # [S, 1, n]
    for r0 in range(0, m, rows):
        r1 = min(m, r0 + rows)
        if exact_distances:
            sq = torch.cdist(points[:, r0:r1], centers, compute_mode="donot_use_mm_for_euclid_dist").square_()
        else:
            p = points[:, r0:r1]
            sq = torch.baddbmm((p * p).sum(-1, keepdim=True), p, centers.transpose(1, 2), alpha=-2.0)
            sq.add_(c_norm2).clamp_min_(0.0)
        e, prev = None, None
        for k in order:
            scale = float(scales[k])
            squarings = _squarings(scale, prev) if (e is not None and lw is None) else None
            if squarings is not None:
                for _ in range(squarings):
                    e.square_()
                shift = shift * (scale / prev)
            else:
                logit = torch.mul(sq, -scale)
                if lw is not None:
                    logit.add_(lw)
                shift = logit.amax(dim=-1, keepdim=True)  # [S, c, 1]; every term below is ≤ 1
                e = logit.sub_(shift).exp_()
            prev = scale
            shift2 = shift.squeeze(-1)
            if not grouped:
                total[k, :, r0:r1] = e.sum(dim=-1).log_().add_(shift2)
            else:
                per_group = torch.matmul(e, onehot)  # [S, c, C+1]
                total[k, :, r0:r1] = per_group[..., -1].log().add_(shift2)
                idx = pg[r0:r1].view(1, -1, 1).expand(s, -1, 1)
                g = per_group.gather(-1, idx).squeeze(-1)  # [S, c]
                own[k, :, r0:r1] = g.log().add_(shift2)
                under[k, :, r0:r1] = g < _UNDERFLOW  # redone below, after one check for all chunks
    if grouped and bool(under.any()):  # rare: a point's group is far from its nearest centre
        _redo_underflowed_groups(points, centers, scales, lw, pg, centre_groups.to(points.device), under, own)
    return total, own


def _redo_underflowed_groups(points, centers, scales, lw, point_groups, centre_groups, under, own) -> None:
    """Exact log-sums over the own group, by a masked logsumexp, for the rows flagged in `under` [K, S, M]."""
    bad = under.nonzero()  # [nb, 3]: scale index, seed, row
    n = centers.shape[1]
    step = max(1, CHUNK_ELEMENTS // max(1, n * centers.shape[2]))
    neg_scales = torch.tensor([-float(x) for x in scales], dtype=points.dtype, device=points.device)
    for a in range(0, bad.shape[0], step):
        k, si, ri = bad[a:a + step].unbind(1)
        sq = (points[si, ri].unsqueeze(1) - centers[si]).square_().sum(-1)  # [b, n]
        lg = sq.mul_(neg_scales[k].unsqueeze(1))
        if lw is not None:
            lg = lg + (lw[si, 0] if lw.dim() == 3 else lw)
        lg = lg.masked_fill(centre_groups[None, :] != point_groups[ri][:, None], float("-inf"))
        own[k, si, ri] = torch.logsumexp(lg, dim=-1)


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _bits_from_log_sums(total: torch.Tensor, own: torch.Tensor | None, labels: torch.Tensor | None,
                        n_classes: int | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(I(X;T), I(T;Y)) in bits from the kernel log-sums over all N points (`total`) and over each point's
    own class (`own`), both [..., N]: I(X;T) = mean_a [log N − total_a], I(T;Y) = mean_a [own_a − log N_{y_a}
    − total_a + log N] (`kde_mi`'s formulas)."""
    log_n = math.log(total.shape[-1])
    i_xt = (log_n - total).mean(dim=-1) / LN2
    if own is None:
        return i_xt, None
    log_ny = torch.bincount(labels, minlength=n_classes).to(total.dtype).log()[labels]  # [N]
    return i_xt, (own - log_ny - total + log_n).mean(dim=-1) / LN2


def _kde_scales(noise_var: float) -> tuple[float, float]:
    """The kernels' scales s in exp(−s‖h_i − h_j‖²): the KL upper bound's 1/(2σ²), then the Bhattacharyya lower
    bound's 1/(8σ²)."""
    return 1.0 / (2.0 * noise_var), 1.0 / (8.0 * noise_var)


def _bounds(total: torch.Tensor, own: torch.Tensor | None, labels: torch.Tensor | None,
            n_classes: int | None) -> dict[str, torch.Tensor]:
    """The four KDE quantities from log-sums [2, S, N] at the scales of `_kde_scales` (upper, then lower)."""
    i_xt, i_ty = _bits_from_log_sums(total, own, labels, n_classes)  # [2, S] each
    out = {"upper_xt": i_xt[0], "lower_xt": i_xt[1]}
    if i_ty is not None:
        out["upper_ty"], out["lower_ty"] = i_ty[0], i_ty[1]
    return out


# Largest logit size s‖x‖² (after centring) up to which the attention path keeps float32 dot products; beyond
# it a group is summed pairwise. Each logit carries a rounding error of about one float32 ulp of s‖x‖², and it
# matters where near pairs abound: on spread layers the bounds stay within ~2e-5 bits of exact sums (and within
# 2e-4 up to this limit: 1e5 → 2e-4 bits, 1e6 → 2e-3, 1e7 → 2e-2, measured on spread features), but on
# saturated tanh layers, whose points pile up in the corners, within ~1e-3 bits (measured: 4.3e-4 bits on a
# 10-wide layer of tanh(20·z), σ² = 1e-3, tests/measures/test_kde.py; 7.4e-4 on a trained szt_tanh layer).
# float64 inputs (measure.kde.precision = "float64") make the same kernels exact to ~1e-9 bits at ~2× the cost.
ATTENTION_MAX_LOGIT = 1e5


def _round8(n: int) -> int:
    return -(-n // 8) * 8


def self_kernel_log_sums_attention(
    x: torch.Tensor,
    scale: float,
    labels: torch.Tensor | None = None,
    n_groups: int | None = None,
    chunk_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log Σ_j exp(−s‖x_a − x_j‖²) over all points j of the same set, and over a's own label group: the
    set's kernel sums by attention (`kernel_log_sums_attention` with the points as their own centres; the
    reference term of row a is the point itself, K_aa = 1)."""
    return kernel_log_sums_attention(x, x, scale, x.new_zeros(x.shape[:2]), labels, labels, n_groups, chunk_size)


def kernel_log_sums_attention(
    points: torch.Tensor,
    centers: torch.Tensor,
    scale: float,
    ref: torch.Tensor,
    point_groups: torch.Tensor | None = None,
    centre_groups: torch.Tensor | None = None,
    n_groups: int | None = None,
    chunk_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log Σ_j exp(−s‖t_a − c_j‖²) over all centres j, and over the centres of a's own group, by
    scaled-dot-product attention (one fused kernel: the M×n kernel matrix is never stored).

    points [B, M, d], centers [B, n, d] (B = any batch, e.g. layers × seeds); ref [B, M] = −s‖t_a − c‖² for a
    centre c of a's own group (the point itself for a set's own sums: 0). point_groups [M] and centre_groups
    [n] int64, or None. Returns (total [B, M], own [B, M] or None). The logits −s‖t_a − c_j‖² equal
    q_a·k_j − s‖t_a‖² with q_a = (2s·t_a, 1) and k_j = (c_j, −s‖c_j‖²); the row's constant is restored with
    an extra "sink" key whose logit is the reference term's (q_a gets s‖t_a‖² + ref_a, the sink key 1): the
    sink's share of the softmax is o = e^ref/(e^ref + Σ_j K_aj), so log Σ_j K_aj = log(1 − o) − log o + ref,
    and a value column of one-hot groups gives each group's share the same way. The reference centre is in
    both sums, so o ≤ ½ never underflows. Squared distances enter through a dot product, so their precision
    is that of the matmul distances (absolute ~1e-6·‖x‖² in float32; pass float64 for SP's narrow kernels).
    Feature columns are zero-padded to a multiple of 8 (zeros change no distance). Chunked over rows.
    """
    b, m, d = points.shape
    n = centers.shape[1]
    dtype = points.dtype
    tn = (points * points).sum(-1)  # [B, M]
    cn = (centers * centers).sum(-1)  # [B, n]
    c = 0
    if point_groups is not None:
        point_groups = point_groups.to(device=points.device, dtype=torch.int64)
        centre_groups = centre_groups.to(device=points.device, dtype=torch.int64)
        c = int(n_groups) if n_groups is not None else int(max(point_groups.max(), centre_groups.max())) + 1
    # On the CPU q, k and v get one width: torch's CPU flash-attention kernel needs equal head sizes and
    # otherwise falls back to the math path that stores the kernel block (7× slower on SZT's 10-wide
    # layers, benchmarks/bench_estimators.py on a 2-core CPU)
    width = max(_round8(d + 2), _round8(c + 1))
    q = points.new_zeros(b, m, width)
    q[..., :d] = points * (2.0 * scale)
    q[..., d] = 1.0
    q[..., d + 1] = tn * scale + ref.to(dtype)
    k = points.new_zeros(b, n + 1, width)
    k[:, :n, :d] = centers
    k[:, :n, d] = cn * -scale
    k[:, n, d + 1] = 1.0
    v = points.new_zeros(b, n + 1, width if points.device.type == "cpu" else _round8(c + 1))  # CUDA: any v width
    if c:
        v[:, :n, :c] = torch.nn.functional.one_hot(centre_groups, c).to(dtype)
    v[:, n, c] = 1.0
    rows = rows_per_chunk(b, n, chunk_size, points.device)
    out = torch.cat([
        torch.nn.functional.scaled_dot_product_attention(q[:, None, r0:r0 + rows], k[:, None], v[:, None], scale=1.0)[:, 0]
        for r0 in range(0, m, rows)], dim=1)  # [B, M, C+1 (padded)]
    log_sink = out[..., c].log() - ref.to(dtype)
    total = torch.log1p(-out[..., c]).sub_(log_sink)
    own = None
    if c:
        own = out.gather(-1, point_groups.view(1, m, 1).expand(b, m, 1)).squeeze(-1).log_().sub_(log_sink)
    return total, own


def kde_mi_attention(
    layers: Sequence[torch.Tensor],
    labels: torch.Tensor | None,
    noise_var: float,
    n_classes: int | None = None,
    chunk_size: int | None = None,
) -> list[dict[str, torch.Tensor]]:
    """`kde_mi` of several layers [S, N, d_l] (same points) at once, by attention (see
    `self_kernel_log_sums_attention`): layers whose padded width agrees share one kernel call per bound,
    so the SZT network's six layers take two calls for each of the two bounds, all seeds together.

    The logits go through a dot product, whose float32 rounding grows with their size s‖x‖²: points are
    centred first (distances do not change), and a group whose largest centred s‖x‖² exceeds
    ATTENTION_MAX_LOGIT (e.g. wide ReLU features at small σ²) is computed by exact pairwise sums instead.
    Measured float32 error below the limit: ≤ 2e-4 bits on spread layers, up to ~1e-3 bits on saturated ones
    (see ATTENTION_MAX_LOGIT); float64 layers are summed in float64 (tests/measures/test_kde.py)."""
    if labels is not None:
        labels = labels.to(device=layers[0].device, dtype=torch.int64)
        n_classes = int(n_classes) if n_classes is not None else int(labels.max()) + 1
    groups: dict[int, list[int]] = {}
    for i, h in enumerate(layers):
        groups.setdefault(_round8(h.shape[-1] + 2), []).append(i)
    results: list[dict[str, torch.Tensor]] = [{} for _ in layers]
    for members in groups.values():
        dmax = max(layers[i].shape[-1] for i in members)
        xs = [layers[i].to(_compute_dtype(layers[i])) for i in members]
        x = torch.cat([torch.nn.functional.pad(h, (0, dmax - h.shape[-1])) for h in xs])  # [L·S, N, dmax]
        x = x - x.mean(dim=1, keepdim=True)
        s = xs[0].shape[0]
        if float((x * x).sum(-1).amax()) / (2.0 * noise_var) > ATTENTION_MAX_LOGIT:
            for i in members:
                results[i] = kde_mi(layers[i], labels, noise_var, n_classes, chunk_size, exact_distances=True)
            continue
        for name, scale in zip(("upper", "lower"), _kde_scales(noise_var)):
            total, own = self_kernel_log_sums_attention(x, scale, labels, n_classes, chunk_size)
            i_xt, i_ty = _bits_from_log_sums(total, own, labels, n_classes)  # [L·S] each
            for j, i in enumerate(members):
                results[i][f"{name}_xt"] = i_xt[j * s:(j + 1) * s]
                if i_ty is not None:
                    results[i][f"{name}_ty"] = i_ty[j * s:(j + 1) * s]
    return results


def kde_mi_tiled(
    layers: Sequence[torch.Tensor],
    labels: torch.Tensor | None,
    noise_var: float,
    n_classes: int | None = None,
    compiled: bool = True,
) -> list[dict[str, torch.Tensor]]:
    """`kde_mi` of several layers [S, N, d_l] (same points, labels [N] shared by the seeds) from near pairs
    only (`ibtui.measures.kernel_tiles`): one exp for both bounds (the upper kernel is the lower's 4th power),
    each pair once, tile pairs beyond the cut-off skipped. Every log-sum is within TRUNCATION_NATS (1e-7) plus
    float32 rounding (~1e-7 relative) of the exact float64 sum, whatever the layer's shape. compiled=False
    sums in PyTorch even where the compiled kernel is available (for comparison)."""
    if labels is not None:
        labels = labels.to(device=layers[0].device, dtype=torch.int64)
        n_classes = int(n_classes) if n_classes is not None else int(labels.max()) + 1

    def one(h: torch.Tensor) -> dict[str, torch.Tensor]:
        total, own = self_kernel_log_sums_tiled(h.to(_compute_dtype(h)), _kde_scales(noise_var), labels, n_classes,
                                                compiled=compiled)
        return _bounds(total, own, labels, n_classes)

    return list(native.map_threads(one, layers)) if compiled else [one(h) for h in layers]


def kde_mi(
    h: torch.Tensor,
    labels: torch.Tensor | None,
    noise_var: float,
    n_classes: int | None = None,
    chunk_size: int | None = None,
    exact_distances: bool = True,
) -> dict[str, torch.Tensor]:
    """Pairwise-distance bounds on I(X;T) and I(T;Y), in bits, per seed.

    h [S, N, d] activations, labels [N] int64 (or None), noise_var σ². With K_ij = exp(−‖h_i−h_j‖²/(2σ²)):
      upper_xt = −mean_i log mean_j K_ij                    (KL bound H_up(T) − H(T|X))
      lower_xt = same with 8σ² in place of 2σ²              (Bhattacharyya: H_KL(4σ²) + (d/2)·log ¼ − H(T|X))
    and, as Saxe et al. (2018) do, I(T;Y) = H(T) − Σ_y p(y) H(T|Y=y) with every H from the same bound
    (a difference of two bounds, so it is an estimate, not a bound):
      upper_ty = mean_i [log mean_{j: y_j=y_i} K_ij − log mean_j K_ij].
    p(y) is the class frequency among the N points. Both *_xt lie in [0, log2 N]. float32 sums
    (float64 if h is float64); chunked over rows (`chunk_size` rows, default: ≈ 2^24 kernel
    entries a block, so S=10, N=10⁴ runs in ~100 MiB). Sources: Kolchinsky & Tracey (2017), Saxe et al. (2018).
    """
    if h.dim() != 3:
        raise ValueError(f"h must be [S, N, d], got shape {tuple(h.shape)}")
    x = h.to(_compute_dtype(h))
    kw = {}
    if labels is not None:
        labels = labels.to(device=x.device, dtype=torch.int64)
        c = int(n_classes) if n_classes is not None else int(labels.max()) + 1
        kw = dict(point_groups=labels, centre_groups=labels, n_groups=c)
    total, own = gaussian_kernel_log_sums(x, x, _kde_scales(noise_var), chunk_size=chunk_size,
                                          exact_distances=exact_distances, **kw)
    return _bounds(total, own, labels, kw.get("n_groups"))


@functools.lru_cache(maxsize=None)
def attention_agrees(device: torch.device | str, noise_var: float, tolerance_bits: float = 1e-3) -> bool:
    """Whether `kde_mi_attention` matches float64 exact-distance sums on this device to `tolerance_bits`.

    The attention kernels a device dispatches to may compute their dot products with reduced-precision
    tensor-core arithmetic; a 512-point check at start-up decides whether the fused path may be used
    (once per device and σ²: the engines of a sweep share the answer).
    """
    g = torch.Generator().manual_seed(12345)
    h = torch.tanh(torch.randn(2, 512, 10, generator=g) * 0.7)
    y = torch.randint(0, 2, (512,), generator=g)
    exact = kde_mi(h.double(), y, noise_var)
    fused = kde_mi_attention([h.to(device)], y.to(device), noise_var)[0]
    return all(float((fused[k].double().cpu() - exact[k]).abs().max()) <= tolerance_bits for k in exact)

