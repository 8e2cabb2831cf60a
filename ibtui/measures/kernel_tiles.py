"""Gaussian kernel sums of a point set over its near pairs, in tiles, with a stated error bound.

The KDE bounds need, for every point a of a layer, log Σ_j exp(−s‖x_a − x_j‖²) over all N points and over
a's own class. `self_kernel_log_sums_tiled` computes them for many layers and seeds at once:
- Each class's points are laid out in tiles of `tile` points (the last tile of a class padded with dummy
  points that weigh nothing) and ordered by a k-d tree (each segment split at its median along its widest
  coordinate), so that a tile's points lie close together.
- Pairs of tiles whose bounding boxes are farther apart than the cut-off radius r are skipped. Every
  skipped term is below e^(−s_min·r²) and a row's sum holds its own term K_aa = 1, so the log of any row
  sum is off by at most (N − 1)·e^(−s_min·r²); r is chosen to make that `TRUNCATION_NATS`.
- The kernel matrix is symmetric: a tile pair (I, J > I) is computed once, its row sums go to I's points
  and its column sums to J's. Tiles hold one class each, so a tile pair's sums add to the own-class sums
  exactly when both tiles are of the same class.
- One exp2 gives the kernel at the smallest scale; a scale 2^j times larger is j squarings of it (KDE: 8σ²
  then 2σ²), and only where the pair is within that scale's own (shorter) cut-off: the same bound holds for
  every scale.
Two ways sum the tile pairs. On a CPU with a C compiler, float32 points go through the compiled kernel
(tile_sums.c via ibtui.measures.native): squared differences in registers, a block of 8 × 16 pairs beyond the
cut-off skipped too (the same bound), the k-d order by quickselect. Otherwise PyTorch operations
(`_torch_blocks`): squared distances exact to ~1e-9 in float32, each coordinate split into a high part on a
2^−q grid and the rest, so the large terms ‖a‖² + ‖b‖² − 2a·b of the high parts come without rounding from one
matmul (every partial sum is a multiple of 2^−2q below 2^(24−2q)) and the small cross terms from a second one
added to it (`baddbmm`); float64 points are summed in float64 with plain matmul distances (error
~1e-15·‖x‖²). Costs on a 2-core CPU: benchmarks/bench_estimators.py and docs/PERFORMANCE.md.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ibtui.measures import native

# Bound on the error of every log kernel sum from the skipped tile pairs, in nats.
TRUNCATION_NATS = 1e-7
# Points a tile (fewer for small classes); 64 tile pairs of 128 × 128 a block keep each PyTorch operation's data
# in the CPU's caches. On a trained szt_tanh's layers (all 4096 points, 20 seeds, 1 thread, PyTorch sums) tiles
# of 64, 128 and 256 took 2.34, 2.26 and 2.31 s a snapshot at epoch 0 and 1.76, 1.72 and 1.73 s at epoch 8000.
TILE = 128
BLOCK_ELEMENTS = 1 << 20
# Matmul operands (≈ 2·(3d + 4) float32 numbers a point) are built for this many elements at most
# (≈ 256 MiB): larger batches are split.
OPERAND_ELEMENTS = 1 << 25
# A kernel below 2^−126 counts as 2^−126, the smallest normal float32: exp2 is 2× slower where its result
# would be subnormal (measured), and the floor adds at most N·2^−126 ≈ 1e-34 to a sum that holds 1.
_MIN_LOG2_KERNEL = -126.0
# Dummy points get this squared norm: their kernel with any point is exp2(−huge) = 0.
_FAR = 1e30
# In the compiled kernel, dummies sit at this coordinate (squared distances ~1e30 stay finite up to 10⁸ units).
_FAR_POINT = 2.0 ** 50
# Tile pairs a call of the compiled kernel (its row and column sums: 2 MiB a scale).
NATIVE_PAIRS = 1024


def cutoff_radius2(n: int, min_scale: float) -> float:
    """r² beyond which (n − 1) terms exp(−s·r²) together stay below TRUNCATION_NATS."""
    return math.log(max(1, n - 1) / TRUNCATION_NATS) / min_scale


def _layout(labels: torch.Tensor | None, n: int, n_groups: int | None, tile: int):
    """Padded positions of the points, class by class, each class a whole number of tiles.

    Returns (source [Np] index of the point at each position or −1 for a dummy, tile_class [T],
    class_tiles [(first tile, end tile)] per class, tile size)."""
    if labels is None:
        labels = torch.zeros(n, dtype=torch.int64)
        n_groups = 1
    labels = labels.cpu().to(torch.int64)
    c = int(n_groups) if n_groups is not None else int(labels.max()) + 1
    counts = torch.bincount(labels, minlength=c).tolist()
    tile = max(16, min(tile, -(-max(counts) // 16) * 16))  # a multiple of the compiled kernel's vector
    order = torch.argsort(labels, stable=True)
    source, tile_class, spans, start = [], [], [], 0
    for cls, count in enumerate(counts):
        if count == 0:
            continue
        k = -(-count // tile)
        source.append(order[start:start + count])
        source.append(torch.full((k * tile - count,), -1, dtype=torch.int64))
        spans.append((len(tile_class), len(tile_class) + k))
        tile_class += [cls] * k
        start += count
    return torch.cat(source), torch.tensor(tile_class), spans, tile


def _tree_order(x: torch.Tensor, real: torch.Tensor, spans: list[tuple[int, int]], tile: int) -> torch.Tensor:
    """[B, Np] positions in k-d tree order: each segment of tiles is sorted along its widest coordinate and
    split at a tile boundary near its middle, until every segment is one tile. The segments are the same for
    every batch entry (they depend only on the class sizes); the coordinates chosen are each entry's own.
    Dummies sort last in every segment, so they all end in their class's last tile."""
    b, n_pos, d = x.shape
    order = torch.arange(n_pos, device=x.device).expand(b, n_pos).contiguous()
    segments = list(spans)
    while any(end - start > 1 for start, end in segments):
        seg_id = torch.empty(n_pos, dtype=torch.int64)
        for i, (start, end) in enumerate(segments):
            seg_id[start * tile:end * tile] = i
        seg_id = seg_id.to(x.device)
        xo = x.gather(1, order.unsqueeze(-1).expand(b, n_pos, d))
        real_o = real[order].unsqueeze(-1)  # [B, Np, 1]
        index = seg_id.view(1, n_pos, 1).expand(b, n_pos, d)
        lo = torch.full((b, len(segments), d), math.inf, dtype=x.dtype, device=x.device)
        hi = torch.full_like(lo, -math.inf)
        lo.scatter_reduce_(1, index, xo.masked_fill(~real_o, math.inf), "amin")
        hi.scatter_reduce_(1, index, xo.masked_fill(~real_o, -math.inf), "amax")
        widest = (hi - lo).argmax(-1, keepdim=True)  # [B, nseg, 1]
        low, span = lo.gather(2, widest).squeeze(-1)[:, seg_id], (hi - lo).gather(2, widest).squeeze(-1)[:, seg_id]
        # One sort a level: the segment, then the position along its widest coordinate in [0, 0.5] (float64
        # keeps ~2^−48 of the span apart), dummies at 0.75.
        along = (xo.gather(2, widest[:, seg_id]).squeeze(-1) - low).double() / span.double().clamp_min(1e-300)
        key = seg_id.double() + along.mul_(0.5).masked_fill_(~real_o.squeeze(-1), 0.75)
        order = order.gather(1, key.argsort(dim=1))
        split = []
        for start, end in segments:
            if end - start > 1:
                mid = start + (end - start) // 2
                split += [(start, mid), (mid, end)]
            else:
                split.append((start, end))
        segments = split
    return order


def _native_tree_order(lib, x: torch.Tensor, real: torch.Tensor, spans: list[tuple[int, int]], tile: int):
    """The same order from the compiled code (a quickselect a split instead of two sorts a level)."""
    b, n_pos, d = x.shape
    x, real = x.contiguous(), real.to(torch.uint8).contiguous()
    spans_t = torch.tensor(spans, dtype=torch.int64).contiguous()
    order = torch.empty(b, n_pos, dtype=torch.int64)
    key = torch.empty(n_pos, dtype=torch.float32)
    lib.tree_order(x.data_ptr(), real.data_ptr(), b, n_pos, d, spans_t.data_ptr(), len(spans), tile, order.data_ptr(),
                   key.data_ptr())
    return order


def _split_operands(x: torch.Tensor, real: torch.Tensor):
    """Matmul operands whose products give exact squared distances (see the module docstring).

    x [B, P, d] float32 with |x| ≤ 1, real [B, P] bool. Returns (A1, B1, A2, B2), with
    A1·B1ᵀ = ‖a_hi‖² + ‖b_hi‖² − 2 a_hi·b_hi exactly and A2·B2ᵀ the remaining terms."""
    d = x.shape[-1]
    q = (24 - math.ceil(math.log2(4 * d + 1))) // 2  # every partial sum of A1·B1ᵀ is < 2^(24 − 2q)
    grid = 2.0 ** q
    hi = torch.round(x * grid) / grid
    lo = x - hi  # exact: x and hi agree in their leading bits
    n = x.double().square().sum(-1)
    n_hi = torch.round(n * grid * grid) / (grid * grid)
    n_lo = (n - n_hi).masked_fill(~real, _FAR)
    one = torch.ones_like(n)
    a1 = torch.cat([hi, n_hi.unsqueeze(-1).float(), one.unsqueeze(-1).float()], -1)
    b1 = torch.cat([-2.0 * hi, one.unsqueeze(-1).float(), n_hi.unsqueeze(-1).float()], -1)
    a2 = torch.cat([hi, lo, n_lo.unsqueeze(-1).float(), one.unsqueeze(-1).float()], -1)
    b2 = torch.cat([-2.0 * lo, -2.0 * x, one.unsqueeze(-1).float(), n_lo.unsqueeze(-1).float()], -1)
    return a1, b1, a2, b2


def _plain_operands(x: torch.Tensor, real: torch.Tensor):
    """float64 operands: A·Bᵀ = ‖a‖² + ‖b‖² − 2a·b (dummies get a huge norm)."""
    n = x.square().sum(-1).masked_fill(~real, _FAR).unsqueeze(-1)
    one = torch.ones_like(n)
    return torch.cat([x, n, one], -1), torch.cat([-2.0 * x, one, n], -1)


def _torch_blocks(xs, real, pairs, need, steps, factor, n_tiles, tile, double):
    """The tile pairs' sums with PyTorch operations, a block of pairs at a time: exact distances from split
    operands (module docstring), exp2 once, squarings for the larger scales. Yields (p0, p1, scale index,
    row sums [p1 − p0, tile], column sums, 0 where the tiles are the same)."""
    b = xs.shape[0]
    if double:
        a1, b1 = _plain_operands(xs, real)
        a1 = a1 * factor
        a2 = b2 = None
    else:
        a1, b1, a2, b2 = _split_operands(xs, real)
        a2 = a2.view(b * n_tiles, tile, -1)
        b2 = b2.view(b * n_tiles, tile, -1).transpose(1, 2).contiguous()
    a1 = a1.view(b * n_tiles, tile, -1)
    b1 = b1.view(b * n_tiles, tile, -1).transpose(1, 2).contiguous()  # [B·T, w, tile]
    # (squaring step, the indices of the scales it gives), ascending
    schedule = [(step, [k for k, want in enumerate(steps) if want == step]) for step in sorted(set(steps))]
    per_block = max(1, BLOCK_ELEMENTS // (tile * tile))
    # One buffer for all blocks: a fresh multi-MiB tensor a block costs page faults (measured 3× slower bmm).
    buffer = torch.empty(min(per_block, pairs.shape[0]), tile, tile, dtype=a1.dtype, device=xs.device)
    for p0 in range(0, pairs.shape[0], per_block):
        p1 = min(p0 + per_block, pairs.shape[0])
        bi, ti, tj = pairs[p0:p1].unbind(1)
        ri, ci = bi * n_tiles + ti, bi * n_tiles + tj
        kern = torch.bmm(a1.index_select(0, ri), b1.index_select(0, ci), out=buffer[:ri.numel()])
        if a2 is not None:
            kern.baddbmm_(a2.index_select(0, ri), b2.index_select(0, ci), beta=factor, alpha=factor)
        kern.clamp_(min=_MIN_LOG2_KERNEL, max=0.0).exp2_()
        off = (ti != tj).unsqueeze(1).to(kern.dtype)
        done = 0
        for step, wanted in schedule:
            if step > int(need[p0]):
                break
            for _ in range(step - done):
                kern.square_()
            done = step
            for k in wanted:
                yield p0, p1, k, kern.sum(-1), kern.sum(-2).mul_(off)


def _native_sums(lib, xs, real, pairs, need, steps, factor, n_tiles, tile, radius2, same, acc_total, acc_own):
    """The same sums from the compiled kernel (tile_sums.c: direct differences, one exp2, squarings), in
    groups of NATIVE_PAIRS tile pairs spread over `native.threads()` threads (torch's count, plus a core lent
    by a waiting thread), added into acc_total and acc_own (where `same` [P]: both tiles of one class) by the
    compiled add_pair_sums in pair order whatever the thread count, so the sums are the same (and the same bits
    as `_torch_blocks`' sums added by index_add_ would give)."""
    b, _, d = xs.shape
    # Each entry's widest coordinates first, so that the kernel finds far blocks after summing few of them.
    # Dummies sit far away: their kernel with every real point is 0 (their own sums are dropped).
    widest_first = xs.std(1).argsort(dim=1, descending=True)  # [B, d]
    xt = (xs.gather(2, widest_first.unsqueeze(1).expand_as(xs)).masked_fill(~real.unsqueeze(-1), _FAR_POINT)
          .view(b * n_tiles, tile, d).transpose(1, 2).contiguous())
    by_step = sorted(range(len(steps)), key=lambda k: steps[k])  # the kernel's scales, ascending
    sorted_steps = torch.tensor([steps[k] for k in by_step], dtype=torch.int32)
    n_need = torch.searchsorted(sorted_steps.long(), need.cpu(), right=True).to(torch.int32)
    rows_at, cols_at = pairs[:, 0] * n_tiles + pairs[:, 1], pairs[:, 0] * n_tiles + pairs[:, 2]

    def group(p0: int):
        p1 = min(p0 + NATIVE_PAIRS, pairs.shape[0])
        ri, ci, nn = rows_at[p0:p1].contiguous(), cols_at[p0:p1].contiguous(), n_need[p0:p1].contiguous()
        rows = torch.empty(p1 - p0, len(steps), tile)
        cols = torch.empty_like(rows)
        lib.tile_pair_sums(xt.data_ptr(), d, tile, ri.data_ptr(), ci.data_ptr(), nn.data_ptr(), p1 - p0, factor,
                           radius2, sorted_steps.data_ptr(), len(steps), rows.data_ptr(), cols.data_ptr())
        return p0, p1, rows, cols

    scale_index = torch.tensor(by_step, dtype=torch.int64)
    same = same.to(torch.uint8).contiguous()
    own_ptr = acc_own.data_ptr() if acc_own is not None else None
    for p0, p1, rows, cols in native.map_threads(group, range(0, pairs.shape[0], NATIVE_PAIRS)):
        lib.add_pair_sums(rows.data_ptr(), cols.data_ptr(), rows_at[p0:p1].contiguous().data_ptr(),
                          cols_at[p0:p1].contiguous().data_ptr(), same[p0:p1].data_ptr(),
                          n_need[p0:p1].contiguous().data_ptr(), p1 - p0, len(steps), tile, scale_index.data_ptr(),
                          acc_total.shape[1], acc_total.data_ptr(), own_ptr)


def self_kernel_log_sums_tiled(
    x: torch.Tensor,
    scales: Sequence[float],
    labels: torch.Tensor | None = None,
    n_groups: int | None = None,
    tile: int = TILE,
    compiled: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log Σ_j exp(−s‖x_a − x_j‖²) over all points j, and over a's own label group, for every point a.

    x [B, N, d] (B = any batch, e.g. layers × seeds, of the same N points); scales: each a power-of-two
    multiple (×2, ×4, ×8, …) of the smallest; labels [N] int64 shared by the batch, or None. Returns
    (total [K, B, N], own [K, B, N] or None) in the order of `scales`. Error: at most TRUNCATION_NATS from
    skipped pairs, plus float32 rounding of the kernels and block sums (~1e-7 relative); float64 x is summed
    in float64. float32 points on a CPU go through the compiled kernel (ibtui.measures.native) where one is
    built, unless compiled=False; otherwise through PyTorch.
    """
    b, n, d = x.shape
    per_call = max(1, OPERAND_ELEMENTS // max(1, n * (3 * d + 4)))
    if b > per_call:  # bound the operands' memory: a few batch entries at a time
        parts = [self_kernel_log_sums_tiled(x[i:i + per_call], scales, labels, n_groups, tile, compiled)
                 for i in range(0, b, per_call)]
        own = None if parts[0][1] is None else torch.cat([p[1] for p in parts], dim=1)
        return torch.cat([p[0] for p in parts], dim=1), own
    device = x.device
    s_min = min(float(s) for s in scales)
    steps = []
    for s in scales:
        j = math.log2(float(s) / s_min)
        if abs(j - round(j)) > 1e-9:
            raise ValueError(f"scales must be power-of-two multiples of the smallest, got {list(scales)}")
        steps.append(round(j))
    double = x.dtype == torch.float64
    source, tile_class, spans, tile = _layout(labels, n, n_groups, tile)
    source, tile_class = source.to(device), tile_class.to(device)
    real = source >= 0
    n_pos, n_tiles = source.numel(), tile_class.numel()
    # An entry with a non-finite coordinate (a diverged seed) gets NaN sums, as a dense sum would; the others
    # are computed as usual.
    largest = x.abs().amax(dim=(1, 2))  # [B]: NaN or inf where a coordinate is not finite (amax keeps NaN)
    broken = ~torch.isfinite(largest)
    if bool(broken.any()):
        x = x.masked_fill(broken.view(b, 1, 1), 0.0)
        largest = largest.masked_fill(broken, 0.0)
    # Scale by a power of two so that |x| ≤ 1: exact (no centring, which would round), distances scale by
    # 4^−e and the kernel's scale by 4^e.
    e = math.ceil(math.log2(max(float(largest.max()), 1e-30)))
    padded = x.index_select(1, source.clamp_min(0)).mul_(2.0 ** -e).masked_fill_(~real.view(1, -1, 1), 0.0)
    scale_min = s_min * 4.0 ** e
    lib = native.tile_sums() if compiled and x.dtype == torch.float32 and device.type == "cpu" else None
    order = _native_tree_order(lib, padded, real, spans, tile) if lib is not None else _tree_order(padded, real, spans, tile)
    xs = padded.gather(1, order.unsqueeze(-1).expand(b, n_pos, d))
    real_s = real[order]  # [B, Np]
    # Bounding boxes of the tiles (real points only) and the tile pairs within the cut-off radius.
    xt = xs.view(b, n_tiles, tile, d)
    rt = real_s.view(b, n_tiles, tile, 1)
    lo = xt.masked_fill(~rt, math.inf).amin(2).double()
    hi = xt.masked_fill(~rt, -math.inf).amax(2).double()
    gap2 = torch.zeros(b, n_tiles, n_tiles, dtype=torch.float64, device=device)
    for k in range(d):
        gap = torch.maximum(lo[:, None, :, k] - hi[:, :, None, k], lo[:, :, None, k] - hi[:, None, :, k])
        gap2.add_(gap.clamp_min_(0.0).square_())
    upper = torch.ones(n_tiles, n_tiles, dtype=torch.bool, device=device).triu()
    radius2 = cutoff_radius2(n, scale_min)
    pairs = ((gap2 < radius2) & upper).nonzero()  # [P, 3]: entry, row tile, column tile
    # The largest squaring step each tile pair needs (a larger scale has a shorter cut-off); the pairs are
    # sorted by it, so a block stops squaring where its pairs stop needing the larger scales.
    pair_gap2 = gap2[pairs[:, 0], pairs[:, 1], pairs[:, 2]]
    need = torch.zeros(pairs.shape[0], dtype=torch.int64, device=device)
    for step in sorted(set(steps))[1:]:
        need = torch.where(pair_gap2 < cutoff_radius2(n, scale_min * 2.0 ** step), step, need)
    need, by_need = need.sort(descending=True, stable=True)
    pairs = pairs[by_need]
    factor = -scale_min / math.log(2.0)  # log2 kernel = factor · D
    width, most_scales, largest_tile = native.limits(lib) if lib is not None else (0, 0, 0)
    acc_total = torch.zeros(len(scales), b * n_tiles, tile, dtype=torch.float64, device=device)
    acc_own = torch.zeros_like(acc_total) if labels is not None else None
    if lib is not None and len(scales) <= most_scales and tile <= largest_tile and tile % width == 0:
        same = tile_class[pairs[:, 1]] == tile_class[pairs[:, 2]]
        _native_sums(lib, xs, real_s, pairs, need, steps, factor, n_tiles, tile, radius2, same, acc_total, acc_own)
    else:
        blocks = _torch_blocks(xs, real_s, pairs, need, steps, factor, n_tiles, tile, double)
        for p0, p1, k, row_sum, col_sum in blocks:  # the sums of pairs[p0:p1] at scale k
            bi, ti, tj = pairs[p0:p1].unbind(1)
            ri, ci = bi * n_tiles + ti, bi * n_tiles + tj
            acc_total[k].index_add_(0, ri, row_sum.double())
            acc_total[k].index_add_(0, ci, col_sum.double())
            if acc_own is not None:
                same = (tile_class[ti] == tile_class[tj]).unsqueeze(1).to(row_sum.dtype)
                acc_own[k].index_add_(0, ri, row_sum.mul_(same).double())
                acc_own[k].index_add_(0, ci, col_sum.mul_(same).double())
    # Back to the caller's point order: position p of entry i holds point source[order[i, p]].
    point = source[order]  # [B, Np]
    keep = point >= 0
    flat = (torch.arange(b, device=device).unsqueeze(1) * n + point)[keep]
    where = torch.empty(b * n, dtype=torch.int64, device=device)  # each point's position (one gather a sum)
    where[flat] = torch.arange(b * n_pos, device=device).view(b, n_pos)[keep]
    dtype = torch.float64 if double else torch.float32

    def unpermute(acc: torch.Tensor) -> torch.Tensor:
        out = acc.view(len(scales), b * n_pos).index_select(1, where)
        return out.log_().view(len(scales), b, n).masked_fill_(broken.view(1, b, 1), math.nan).to(dtype)

    return unpermute(acc_total), (unpermute(acc_own) if acc_own is not None else None)
