"""One training step (forward, loss gradient, backward) of a batched MLP: the compiled step (mlp_step.c) against
PyTorch's hand-written step (BatchedMLP.train_grads), over network widths. It sets the compiled step's width rule
(ibtui.engine.backends.compiled_step.MAX_WIDTH): the widest layer at which the compiled step is still faster.

    python benchmarks/bench_step.py [--seeds 50] [--batch 512] [--threads 1]
"""
from __future__ import annotations

import argparse

import torch
from common import best

from ibtui.engine.backends import compiled_step
from ibtui.models.mlp import BatchedMLP

SHAPES = {  # name → layer sizes (inputs, hidden widths, classes)
    "SZT 12-10-7-5-4-3-2": [12, 10, 7, 5, 4, 3, 2],
    "width 32 (12-32-32-32-2)": [12, 32, 32, 32, 2],
    "width 64 (12-64-64-64-2)": [12, 64, 64, 64, 2],
    "width 128 (12-128-128-128-2)": [12, 128, 128, 128, 2],
    "width 256 (12-256-256-256-2)": [12, 256, 256, 256, 2],
    "MNIST fc 784-500-250-100-50-20-10": [784, 500, 250, 100, 50, 20, 10],
}


def best_ms(fn, calls: int) -> float:
    """ms a call: warmed up, then the best of three timings of `calls` calls."""
    fn()
    return best(fn, calls=calls) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=50)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    lib = compiled_step.library()
    if lib is None:
        raise SystemExit("no working C compiler here: nothing to compare")
    s, b = args.seeds, args.batch
    print(f"one step, {s} seeds, batch {b}, {args.threads} thread(s); ms a step (best of 3)")
    print(f"{'network':36} {'compiled':>9} {'PyTorch':>9} {'ratio':>7}")
    for name, sizes in SHAPES.items():
        g = torch.Generator().manual_seed(0)
        model = BatchedMLP(list(range(s)), sizes, "tanh")
        n_points = 4096
        x = torch.randn(sizes[0], n_points, generator=g)  # every point, feature-major, as the back end holds them
        y = torch.randint(0, sizes[-1], (n_points,), generator=g)
        order = torch.stack([torch.randperm(n_points, generator=g)[:b] for _ in range(s)])
        step = compiled_step.CompiledStep(model, lib)
        repeats = max(2, int(200 * 263 / sum(a * c for a, c in zip(sizes[:-1], sizes[1:]))))
        fast = best_ms(lambda: step(x, y, order, 0, b, 0.0, None), repeats)
        xt, yb = x[:, order].permute(1, 0, 2).contiguous(), y[order]  # the PyTorch step's gathered batch
        plain = best_ms(lambda: model.train_grads(xt, yb), repeats)
        print(f"{name:36} {fast:9.3f} {plain:9.3f} {plain / fast:6.2f}×")


if __name__ == "__main__":
    main()
