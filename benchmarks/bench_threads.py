"""Which torch CPU thread count trains the SZT engine fastest, on a quiet and on a busy machine.

Times the engine (scenarios/szt_tanh.toml, binning at the default snapshot density) at each thread count,
first as the machine is, then with `--busy N` processes spinning on the CPU beside it (a busy machine made on
purpose, so the comparison can be repeated). A thread count that leaves a core to the others can win by a
wide margin on a busy machine: torch's worker threads wait on each other at every one of the many tiny ops
of a step, so one descheduled thread stalls them all.

    python benchmarks/bench_threads.py [--threads 1 2] [--seeds 20] [--epochs 60] [--busy 2] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
from pathlib import Path

import torch

from bench_szt import engine_rate


def _spin() -> None:  # a CPU-bound neighbour
    while True:
        pass


def rates(threads: list[int], seeds: int, epochs: int) -> dict[int, float]:
    out = {}
    for t in threads:
        torch.set_num_threads(t)
        out[t] = engine_rate(torch.device("cpu"), seeds, epochs, measure=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=sorted({1, 2, os.cpu_count() or 1}))
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--busy", type=int, default=os.cpu_count() or 1,
                    help="spinning processes for the busy measurement (0: skip it)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    result = {"cpus": os.cpu_count(), "load_before": os.getloadavg()[0], "seeds": args.seeds,
              "quiet": rates(args.threads, args.seeds, args.epochs)}
    if args.busy:
        ctx = mp.get_context("spawn")
        spinners = [ctx.Process(target=_spin, daemon=True) for _ in range(args.busy)]
        for p in spinners:
            p.start()
        try:
            result["busy"] = rates(args.threads, args.seeds, args.epochs)
        finally:
            for p in spinners:
                p.terminate()
    print(f"engine seed-epochs/s, {args.seeds} seeds, binning on ({result['cpus']} CPUs, "
          f"1-min load {result['load_before']:.1f} at the start)")
    for kind in ("quiet", "busy"):
        if kind in result:
            label = "as is" if kind == "quiet" else f"+{args.busy} busy"
            print(f"  {label:10} " + "  ".join(f"{t} thread{'s' if t > 1 else ''}: {r:8.1f}" for t, r in result[kind].items()))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
