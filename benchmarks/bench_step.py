"""One training step (forward, loss gradient, backward) of a batched MLP: the compiled step (mlp_step.c) of each
build (benchmarks/builds.py: native, x86-64-v3 = AVX2, x86-64 = SSE2) against PyTorch's hand-written step
(BatchedMLP.train_grads), timed in the same run, over network widths. It shows where the compiled step pays
(the engine's auto choice times both paths for the run's own shapes; see ibtui.engine.backends.compiled_step).

    python benchmarks/bench_step.py [--seeds 50] [--batch 512] [--threads 1] [--builds native x86-64-v3 x86-64]
                                    [--shapes szt 32 64 128 256 mnist]
"""
from __future__ import annotations

import argparse
import time

import torch
from builds import BUILDS, available, build

from ibtui.engine.backends import compiled_step
from ibtui.models.mlp import BatchedMLP

SHAPES = {  # key → (name, layer sizes: inputs, hidden widths, classes)
    "szt": ("SZT 12-10-7-5-4-3-2", [12, 10, 7, 5, 4, 3, 2]),
    "32": ("width 32 (12-32-32-32-2)", [12, 32, 32, 32, 2]),
    "64": ("width 64 (12-64-64-64-2)", [12, 64, 64, 64, 2]),
    "128": ("width 128 (12-128-128-128-2)", [12, 128, 128, 128, 2]),
    "256": ("width 256 (12-256-256-256-2)", [12, 256, 256, 256, 2]),
    "mnist": ("MNIST fc 784-500-250-100-50-20-10", [784, 500, 250, 100, 50, 20, 10]),
}
ROUNDS = 5  # each path's time is its best round; rounds interleave the paths, so a busy spell hits all alike


def interleaved_ms(paths: dict, calls: int) -> dict:
    """ms a call of each of `paths` (name → callable): one warm-up call each, then the best of ROUNDS rounds of
    `calls` calls, the paths taking turns within a round."""
    for fn in paths.values():
        fn()
    best = {name: float("inf") for name in paths}
    for _ in range(ROUNDS):
        for name, fn in paths.items():
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            best[name] = min(best[name], (time.perf_counter() - t0) / calls * 1e3)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=50)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--builds", nargs="+", default=list(BUILDS), choices=list(BUILDS))
    ap.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    libs = {}
    for name in available(args.builds):
        with build(name):
            lib = compiled_step.library()
        if lib is not None:
            libs[name] = lib
    if not libs:
        raise SystemExit("no working C compiler here: nothing to compare")
    s, b = args.seeds, args.batch
    print(f"one step, {s} seeds, batch {b}, {args.threads} thread(s); ms a step, best of {ROUNDS} interleaved "
          f"rounds; ×: PyTorch's time / the build's")
    print(f"{'network':36} {'PyTorch':>9}" + "".join(f" {name:>17}" for name in libs))
    for key in args.shapes:
        label, sizes = SHAPES[key]
        g = torch.Generator().manual_seed(0)
        model = BatchedMLP(list(range(s)), sizes, "tanh")
        n_points = 4096
        x = torch.randn(sizes[0], n_points, generator=g)  # every point, feature-major, as the back end holds them
        y = torch.randint(0, sizes[-1], (n_points,), generator=g)
        order = torch.stack([torch.randperm(n_points, generator=g)[:b] for _ in range(s)])
        xt, yb = x[:, order].permute(1, 0, 2).contiguous(), y[order]  # the PyTorch step's gathered batch
        paths = {"PyTorch": lambda: model.train_grads(xt, yb)}
        for name, lib in libs.items():
            step = compiled_step.CompiledStep(model, lib)
            paths[name] = lambda step=step: step(x, y, order, 0, b, 0.0, None)
        calls = max(2, int(100 * 263 / sum(a * c for a, c in zip(sizes[:-1], sizes[1:]))))
        ms = interleaved_ms(paths, calls)
        plain = ms.pop("PyTorch")
        print(f"{label:36} {plain:9.3f}" + "".join(f" {t:9.3f} {plain / t:6.2f}×" for t in ms.values()), flush=True)


if __name__ == "__main__":
    main()
