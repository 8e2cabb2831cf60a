"""Overhead of the training-dynamics probe (gradient SNR, weight norms, transition, Gaussian bound) on SZT.

The SZT engine of benchmarks/bench_szt.py (binning on, snapshot density of scenarios/szt_tanh.toml:
300 snapshots per 8000 epochs, linear spacing) runs with measure.dynamics on and off, alternately in this
process on the same device and thread count; each timing is a fresh engine after one warm-up run.
`--every-epoch` takes a snapshot after every epoch instead: the worst case, as in the first decade of a
log schedule, where every epoch's gradients are accumulated.  Prints seed-epochs/s (median over
`--repeats`) and the slowdown, and the share of a run spent inside the probe's hooks (timed directly, so
robust to other load on the machine); writes JSON with --json.

    python benchmarks/bench_dynamics.py [--device cpu|cuda] [--seeds 50] [--threads 1] [--every-epoch]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from common import SNAPSHOT_DENSITY, SZT_SCENARIO, NullSink, seed_epochs_per_s, sync

from ibtui.engine.trainer import Engine
from ibtui.scenario import load_scenario, with_changes


def scenario(device: torch.device, n_seeds: int, epochs: int, dynamics: bool, every_epoch: bool):
    sc = load_scenario(SZT_SCENARIO)
    snaps = epochs + 1 if every_epoch else max(2, int(round(epochs * SNAPSHOT_DENSITY)))
    return with_changes(sc, {"run.seeds": n_seeds, "run.epochs": epochs, "run.device": str(device),
                             "measure.snapshots": snaps, "measure.schedule": "linear",
                             "measure.estimators": ["binning"], "measure.dynamics.enabled": dynamics})


def probe_share(sc, device: torch.device) -> float:
    """Fraction of an engine run spent inside the dynamics probe's hooks (synchronised around each call).

    Robust to a busy machine, unlike the difference of two rates; the sync makes it an upper bound on GPUs.
    """
    from ibtui.engine.probes.dynamics import DynamicsProbe

    engine = Engine(sc)
    probe = next(p for p in engine.probes if isinstance(p, DynamicsProbe))
    spent = [0.0]

    def timed(fn):
        def wrapper(*args):
            sync(device)
            t = time.perf_counter()
            out = fn(*args)
            sync(device)
            spent[0] += time.perf_counter() - t
            return out
        return wrapper

    probe.after_step = timed(probe.after_step)
    probe.at_snapshot = timed(probe.at_snapshot)
    sync(device)
    t0 = time.perf_counter()
    engine.run(NullSink())
    sync(device)
    return spent[0] / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seeds", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--epochs", type=int, default=0, help="epochs per timing (0 = auto)")
    ap.add_argument("--repeats", type=int, default=3, help="alternating on/off timings; the median is reported")
    ap.add_argument("--every-epoch", action="store_true", help="a snapshot after every epoch (worst case)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    epochs = args.epochs or (40 if args.every_epoch else 160)
    sc_on = scenario(device, args.seeds, epochs, True, args.every_epoch)
    sc_off = scenario(device, args.seeds, epochs, False, args.every_epoch)
    for sc in (sc_on, sc_off):  # warm-up: first-call costs belong to neither side
        Engine(with_changes(sc, {"run.epochs": 4, "measure.snapshots": 5})).run(NullSink())
    on, off = [], []
    for _ in range(args.repeats):
        on.append(seed_epochs_per_s(sc_on, device))
        off.append(seed_epochs_per_s(sc_off, device))
    r_on, r_off = statistics.median(on), statistics.median(off)
    share = statistics.median(probe_share(sc_on, device) for _ in range(args.repeats))
    row = {"probe_share": share, "device": str(device), "seeds": args.seeds, "epochs": epochs,
           "every_epoch": args.every_epoch,
           "snapshots": len(Engine(sc_on).snapshots), "dynamics_on": r_on, "dynamics_off": r_off,
           "slowdown": r_off / r_on - 1.0, "on_all": on, "off_all": off, "threads": args.threads,
           "torch": torch.__version__}
    print(f"{'device':8} {'seeds':>5} {'epochs':>6} {'snaps':>5} {'dynamics on':>12} {'dynamics off':>13} "
          f"{'slower by':>10}   (seed-epochs/s, median of {args.repeats})")
    print(f"{row['device']:8} {row['seeds']:5d} {epochs:6d} {row['snapshots']:5d} {r_on:12.1f} {r_off:13.1f} "
          f"{100 * row['slowdown']:9.1f}%")
    print(f"time inside the dynamics probe: {100 * share:.1f}% of a run with it on "
          f"(a slowdown of {100 * share / (1 - share):.1f}% if the rest is unchanged)")
    if args.json:
        args.json.write_text(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
