"""Overhead of ibtui.watch on a plain PyTorch loop: the small CNN of examples/own_model.py on MNIST.

The same training steps (batch 64, Adam) run plain and followed by `mon.step(loss=…, batch_size=…)`,
alternately in rounds; each figure is the best of the rounds (this machine's neighbours come and go). Between
snapshots `mon.step` only counts the step and adds the loss (no hooks are registered: they exist only during a
snapshot's pass); in the epoch before a snapshot it also accumulates the watched layers' gradient moments (the
SNR window). The time inside `mon.step` is also timed directly, which other load disturbs less than the
difference of two loop timings. Then one snapshot: the time it holds the user's thread (the forward pass on
the MI points with hooks, the dynamics, each probe's start) and the measuring worker's time for its sums.
Target (issue 33): overhead between snapshots ≤ 5 % of a plain step.

    python benchmarks/bench_watch.py [MNIST_FOLDER] [--steps 200] [--rounds 5] [--threads 1]
"""
from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from common import REPO

import ibtui

DEFAULT_MNIST = REPO.parent / "shared" / "data" / "mnist-5k"


def example():
    spec = importlib.util.spec_from_file_location("own_model", REPO / "examples" / "own_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", nargs="?", default=str(DEFAULT_MNIST) if DEFAULT_MNIST.is_dir() else "")
    parser.add_argument("--steps", type=int, default=200, help="training steps a timing")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--mi-points", type=int, default=1000)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ex = example()
    x, y, _, _ = ex.mnist(Path(args.folder)) if args.folder else ex.synthetic()
    torch.manual_seed(0)
    model = ex.SmallCNN()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = [torch.randint(0, len(x), (64,)) for _ in range(args.steps)]

    def loop(mon=None) -> tuple[float, float]:
        """(seconds a step, seconds a step inside mon.step)."""
        inside = 0.0
        t0 = time.perf_counter()
        for b in batches:
            loss = F.cross_entropy(model(x[b]), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if mon is not None:
                t1 = time.perf_counter()
                mon.step(loss=loss, batch_size=64)
                inside += time.perf_counter() - t1
        return (time.perf_counter() - t0) / len(batches), inside / len(batches)

    with tempfile.TemporaryDirectory() as tmp:
        watch = dict(inputs=x[:args.mi_points], labels=y[:args.mi_points], layers=["act", "fc2"],
                     estimators=["binning", "kde"], settings={"measure.kde.noise_variance": 0.1})
        between = ibtui.watch(model, export=Path(tmp) / "between.csv", every=10**6, **watch)  # no window: epoch 1
        window = ibtui.watch(model, export=Path(tmp) / "window.csv", every=1, **watch)  # epoch 1 is a window
        loop()  # warm-up
        plain, off, on = [], [], []
        for _ in range(args.rounds):
            plain.append(loop()[0])
            off.append(loop(between))
            on.append(loop(window))
        t_plain = min(plain)
        t_off, in_off = min(s for s, _ in off), min(i for _, i in off)
        t_on, in_on = min(s for s, _ in on), min(i for _, i in on)
        t0 = time.perf_counter()
        window.epoch(1)  # a snapshot: the user's thread is held for the pass and the starts only
        held = time.perf_counter() - t0
        window.close()
        between.close()
        job = window.queue.job_s
    src = f"MNIST from {args.folder}" if args.folder else "synthetic MNIST-shaped data"
    print(f"small CNN ({sum(p.numel() for p in model.parameters()):,} parameters), batch 64, {src}, "
          f"{args.threads} torch thread(s), best of {args.rounds} rounds of {args.steps} steps")
    print(f"plain step                        {t_plain * 1e3:8.3f} ms")
    print(f"between snapshots: step+mon.step  {t_off * 1e3:8.3f} ms  ({(t_off / t_plain - 1) * 100:+.1f} % loop), "
          f"inside mon.step {in_off * 1e6:7.1f} µs = {in_off / t_plain * 100:.2f} % of a plain step")
    print(f"SNR window: step+mon.step         {t_on * 1e3:8.3f} ms  ({(t_on / t_plain - 1) * 100:+.1f} % loop), "
          f"inside mon.step {in_on * 1e6:7.1f} µs = {in_on / t_plain * 100:.2f} % of a plain step")
    print(f"a snapshot on {args.mi_points} points: holds the loop {held * 1e3:.0f} ms "
          f"(= {held / t_plain:.0f} plain steps); the worker's sums {job * 1e3:.0f} ms (binning + KDE, 2 layers)")


if __name__ == "__main__":
    main()
