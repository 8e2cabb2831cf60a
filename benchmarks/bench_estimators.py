"""Per-snapshot cost of the MI estimators (binning, KDE, SP) at SZT and MNIST sizes, all layers, many seeds.

Activations are synthetic but shaped like the real layers (tanh of random projections, so points spread the
way a trained layer's do). Each estimator is timed on the device given; the first call is a warm-up. On a CPU the
compiled tile kernel is timed for each build (benchmarks/builds.py: native, x86-64-v3 = AVX2, x86-64 = SSE2)
beside the PyTorch tiles and the fused attention kernel of the same run; --kde-only times just those rows.

    python benchmarks/bench_estimators.py [--device cpu|cuda] [--seeds 10] [--json out.json] [--kde-only]
                                          [--builds native x86-64-v3 x86-64]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from builds import BUILDS, available, build
from common import sync

from ibtui.measures.binning import BinSpec, binning_mi
from ibtui.measures import native
from ibtui.measures.kde import kde_mi, kde_mi_attention, kde_mi_tiled
from ibtui.measures.sp import sp_mutual_information

SIZES = {"szt": (4096, [10, 7, 5, 4, 3, 2], 2), "mnist": (10000, [500, 250, 100, 50, 20, 10], 10)}


def layers(n: int, widths: list[int], seeds: int, device, k: int = 1) -> list[torch.Tensor]:
    g = torch.Generator(device="cpu").manual_seed(0)
    return [torch.tanh(torch.randn(seeds, n * k, w, generator=g) * 0.7).to(device) for w in widths]


def timed(fn, device, repeat: int = 2) -> float:
    fn()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / repeat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--sizes", nargs="+", default=["szt", "mnist"])
    ap.add_argument("--sp-samples", type=int, default=4)
    ap.add_argument("--sp-mc", type=int, default=2)
    ap.add_argument("--sp-points", type=int, default=256)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--kde-only", action="store_true", help="only the KDE rows on all points: tiles (each build, "
                    "and PyTorch's sums) and fused attention")
    ap.add_argument("--builds", nargs="+", default=["native", "x86-64-v3"], choices=list(BUILDS),
                    help="builds of the compiled tile kernel to time (default: native and x86-64-v3)")
    args = ap.parse_args()
    device = torch.device(args.device)
    print(f"device {device}, {args.seeds} seeds, all layers — seconds per snapshot, as measured:", flush=True)

    class Rows(list):  # prints each row as it is measured (a busy machine's run may be cut short)
        def append(self, row):
            super().append(row)
            print(f"  {row[0]:6} {row[1]:58} {row[2]:9.3f} s", flush=True)

    rows = Rows()
    for size in args.sizes:
        n, widths, n_cls = SIZES[size]
        y = torch.randint(0, n_cls, (n,), generator=torch.Generator().manual_seed(1)).to(device)
        hs = layers(n, widths, args.seeds, device)
        var = 1e-3 if size == "szt" else 0.1
        if not args.kde_only:
            rows.append((size, "binning (30 bins)", timed(lambda: [binning_mi(h, BinSpec(), y) for h in hs if h.shape[-1] <= 64], device)))
            rows.append((size, f"KDE upper+lower σ²={var:g}, all N, pairwise sums",
                         timed(lambda: [kde_mi(h, y, var, exact_distances=False) for h in hs], device, repeat=1)))
        cpu = device.type == "cpu"  # the probe sums in tiles on a CPU, by attention on a GPU
        rows.append((size, f"KDE upper+lower σ²={var:g}, all N, fused attention" + ("" if cpu else " (probe)"),
                     timed(lambda: kde_mi_attention(hs, y, var), device, repeat=1)))
        if cpu:  # the tiles with the compiled kernel of each build (the probe, where a C compiler works), in PyTorch
            for name in available(args.builds):
                with build(name):
                    if native.tile_sums() is not None:
                        rows.append((size, f"KDE upper+lower σ²={var:g}, all N, tiles, compiled {name}"
                                     + (" (probe)" if name == "native" else ""),
                                     timed(lambda: kde_mi_tiled(hs, y, var), device, repeat=3)))
            rows.append((size, f"KDE upper+lower σ²={var:g}, all N, tiles, PyTorch sums",
                         timed(lambda: kde_mi_tiled(hs, y, var, compiled=False), device, repeat=2)))
        if args.kde_only:
            continue
        if size == "szt":  # a fixed 1024-point subset (`--set measure.kde.points=1024`)
            sub = [h[:, :1024] for h in hs]
            rows.append((size, f"KDE upper+lower σ²={var:g}, 1024 points, fused attention",
                         timed(lambda: kde_mi_attention(sub, y[:1024], var), device)))
            if cpu and native.tile_sums() is not None:
                rows.append((size, f"KDE upper+lower σ²={var:g}, 1024 points, tiles, compiled kernel (probe)",
                             timed(lambda: kde_mi_tiled(sub, y[:1024], var), device)))
        k = args.sp_samples
        hk = layers(n, widths[:-1], args.seeds, device, k=k)
        cond = [h.reshape(args.seeds, n, k, -1) for h in hk]
        gen = torch.Generator(device=device).manual_seed(0)
        rows.append((size, f"SP k={k} mc={args.sp_mc} points={args.sp_points} (hidden layers)",
                     timed(lambda: [sp_mutual_information(c, y, 0.01 if size == "szt" else 0.1, args.sp_mc,
                                                          generator=gen, n_points=args.sp_points or None) for c in cond],
                           device, repeat=1)))
    print(f"device {device}, {args.seeds} seeds, all layers — seconds per snapshot (all rows)")
    for size, est, sec in rows:
        print(f"  {size:6} {est:58} {sec:9.3f} s")
    if args.json:
        args.json.write_text(json.dumps([{"size": s, "estimator": e, "seconds": t, "device": str(device),
                                          "seeds": args.seeds} for s, e, t in rows], indent=2))


if __name__ == "__main__":
    main()
