"""Seconds per epoch of ResNet-32 at full CIFAR size (50,000 training, 10,000 test images), synthetic data.

The engine runs scenarios/cifar10_resnet32.toml as it is (SGD, batch 128, augmentation, dynamics probe)
on random images of the real shape: `load_cifar` is replaced by a generator, everything else (data on
the device, batch gathers, augmentation, autograd, optimiser, hooks, snapshot) is the engine's own code.
For each seed count it times `--steps` training steps after `--warmup` steps and scales to an epoch of
ceil(50000/128) = 391 steps (or times whole epochs with --steps 0), then times one snapshot (10,000 test
images and the MI subset, eval mode). Seeds run batched (grouped convolutions); compare the seed-epochs/s
of 1 seed with those of 10 to see whether batching pays on the device.

    python benchmarks/bench_images.py --device cuda --seeds 1 10 50 [--steps 50] [--cudnn-benchmark] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from common import REPO, sync

import ibtui.data.images as images
from ibtui.engine.trainer import Engine
from ibtui.scenario import load_scenario

SCENARIO = REPO / "scenarios" / "cifar10_resnet32.toml"
N_TRAIN, N_TEST = 50_000, 10_000


def synthetic_cifar(folder, which: int = 10) -> images.ImageData:
    """Random CIFAR-shaped images (values k/255, as the real ones) and labels; `folder` is ignored."""
    g = np.random.default_rng(0)

    def part(n):
        x = torch.from_numpy(g.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8).astype(np.float32) / 255.0)
        return x, torch.from_numpy(g.integers(0, which, size=n).astype(np.int64))

    (xtr, ytr), (xte, yte) = part(N_TRAIN), part(N_TEST)
    return images.ImageData(xtr, ytr, xte, yte, which, f"cifar{which}", (Path("synthetic/data_batch_1"),))


def train_steps(engine: Engine, n_steps: int) -> None:
    """The first n_steps steps of an epoch, as Engine.train_epoch runs them."""
    hooks = engine.start_epoch()
    for start, stop in engine.batches[:n_steps]:
        engine.train_step(engine.step, start, stop, hooks)
        engine.step += 1


def bench(n_seeds: int, device: str, steps: int, warmup: int, extra: list[str], snapshot: bool = True) -> dict:
    sc = load_scenario(SCENARIO, [f"run.seeds={n_seeds}", f'run.device="{device}"', 'data.dir="."',
                                  "measure.dynamics.window_steps=0", *extra])  # the probe watches every step
    engine = Engine(sc)
    dev = engine.device
    steps_per_epoch = math.ceil(N_TRAIN / sc.train.batch_size)
    train_steps(engine, warmup)
    sync(dev)
    if steps > 0:
        t0 = time.perf_counter()
        train_steps(engine, steps)
        sync(dev)
        per_step = (time.perf_counter() - t0) / steps
        epoch_s = per_step * steps_per_epoch
    else:
        t0 = time.perf_counter()
        engine.train_epoch()
        sync(dev)
        epoch_s = time.perf_counter() - t0
        per_step = epoch_s / steps_per_epoch
    snapshot_s = math.nan
    if snapshot:
        t0 = time.perf_counter()
        values = engine.measure()
        torch.stack([v.float() for v in values.values()]).cpu()  # the one copy to the host the engine makes
        snapshot_s = time.perf_counter() - t0
    out = {"seeds": n_seeds, "device": engine.info.device, "step_s": per_step, "epoch_s": epoch_s,
           "seed_epochs_per_s": n_seeds / epoch_s, "snapshot_s": snapshot_s}
    if dev.type == "cuda":
        out["peak_gib"] = torch.cuda.max_memory_allocated(dev) / 2**30
        torch.cuda.reset_peak_memory_stats(dev)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 10])
    ap.add_argument("--steps", type=int, default=50, help="timed steps per seed count (0 = one whole epoch)")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch's default)")
    ap.add_argument("--cudnn-benchmark", action="store_true", help="torch.backends.cudnn.benchmark = True")
    ap.add_argument("--no-augment", action="store_true")
    ap.add_argument("--no-snapshot", action="store_true", help="skip timing a snapshot (slow on a CPU)")
    ap.add_argument("--set", action="append", default=[], help="extra scenario override section.key=value")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    images.load_cifar = synthetic_cifar
    extra = list(args.set) + (["data.augment=false"] if args.no_augment else [])
    rows = []
    print(f"ResNet-32, CIFAR size ({N_TRAIN} train / {N_TEST} test, synthetic), batch 128, "
          f"{'no augmentation' if args.no_augment else 'augmentation'}, cudnn.benchmark={args.cudnn_benchmark}")
    print(f"{'seeds':>6} {'s/step':>8} {'s/epoch':>9} {'seed-epochs/s':>14} {'snapshot s':>11} {'peak GiB':>9}")
    for s in args.seeds:
        r = bench(s, args.device, args.steps, args.warmup, extra, snapshot=not args.no_snapshot)
        rows.append(r)
        print(f"{s:>6} {r['step_s']:>8.3f} {r['epoch_s']:>9.1f} {r['seed_epochs_per_s']:>14.4f} "
              f"{r['snapshot_s']:>11.2f} {r.get('peak_gib', float('nan')):>9.2f}", flush=True)
    print(f"device: {rows[0]['device']}")
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
