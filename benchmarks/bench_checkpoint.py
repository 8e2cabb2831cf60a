"""What checkpoints cost (`ibtui resume`): the size of a checkpoint, the time to write one, and what that adds to
the default run, whose export writes one every run.checkpoint_every = 60 s.

The state is the default scenario's (szt_tanh: 20 seeds, dynamics on) after some training, saved the way a run
saves it (CheckpointSink.save: torch.save to a temporary file, fsync, rename). The added fraction is
(checkpoints a run writes) × (seconds a checkpoint) / (the run's seconds); `--end-to-end` also times a shortened
default run with and without checkpoints (one after the other, so a busy machine blurs it).

    python benchmarks/bench_checkpoint.py [--scenario szt_tanh] [--run-seconds 240] [--end-to-end]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO

from ibtui.engine.sweep import SweepRunner
from ibtui.scenario import load_scenario, to_toml
from ibtui.sinks.checkpoint import CheckpointSink
from ibtui.sinks.csv import CsvSink


def checkpoint_cost(scenario: str = "szt_tanh", run_seconds: float = 240.0, every_s: float = 60.0,
                    train_epochs: int = 50) -> dict:
    """{"bytes", "save_s", "added_fraction"} of the scenario's checkpoint (after `train_epochs` epochs)."""
    sc = load_scenario(scenario)
    runner = SweepRunner(sc)
    for _ in range(train_epochs):
        runner.current.train_epoch()
    runner.current.at_boundary = True
    with tempfile.TemporaryDirectory() as tmp:
        csv = CsvSink(Path(tmp) / "run.csv", {}, to_toml(sc))
        sink = CheckpointSink(runner, csv, every_s, to_toml(sc))
        sink.save()  # warm-up
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            sink.save()
            times.append(time.perf_counter() - t0)
        size = sink.path.stat().st_size
        csv.close(False)
    save_s = sorted(times)[len(times) // 2]
    n = int(run_seconds // every_s) + 1  # the periodic ones and the one at a stop
    return {"bytes": size, "save_s": save_s, "added_fraction": n * save_s / run_seconds}


def end_to_end(epochs: int) -> tuple[float, float]:
    """Seconds of the default run shortened to `epochs`, with checkpoints every second and without."""
    out = []
    for every in ("1", "0"):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "ibtui", "szt_tanh", "--headless", "-q", "-o", f"{tmp}/r.csv",
                            "--set", f"run.epochs={epochs}", "--set", f"run.checkpoint_every={every}"],
                           cwd=REPO, check=True, stdin=subprocess.DEVNULL)
            out.append(time.perf_counter() - t0)
    return out[0], out[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="szt_tanh")
    ap.add_argument("--run-seconds", type=float, default=240.0, help="the run's length the fraction is taken of")
    ap.add_argument("--end-to-end", type=int, default=0, metavar="EPOCHS",
                    help="also time the default run cut to EPOCHS epochs with checkpoints every 1 s and without")
    args = ap.parse_args()
    c = checkpoint_cost(args.scenario, args.run_seconds)
    print(f"{args.scenario}: checkpoint {c['bytes'] / 1e3:.1f} kB, written in {c['save_s'] * 1e3:.2f} ms; every 60 s "
          f"over a {args.run_seconds:.0f} s run: +{100 * c['added_fraction']:.3f} % of its time")
    if args.end_to_end:
        with_ck, without = end_to_end(args.end_to_end)
        print(f"default run cut to {args.end_to_end} epochs: {with_ck:.1f} s with a checkpoint every 1 s, "
              f"{without:.1f} s without ({100 * (with_ck / without - 1):+.1f} %)")


if __name__ == "__main__":
    main()
