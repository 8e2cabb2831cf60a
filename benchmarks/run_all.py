"""One entry point for ibtui's speed figures: prints each table and writes all of them as JSON.

    python benchmarks/run_all.py --device cpu|cuda [--json benchmarks.json] [--quick]

Runs, on the device given: bench_szt (training seed-epochs/s, engine vs a plain per-seed loop, 1/50/500
seeds, measurement on and off), bench_estimators (per-snapshot cost of binning, KDE and SP at SZT and
MNIST sizes), and the end-to-end time of scenarios/szt_tanh.toml at 50 seeds (headless, binning + KDE).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def run(cmd: list[str]) -> None:
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=REPO, check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", type=Path, default=Path("benchmarks.json"))
    ap.add_argument("--quick", action="store_true", help="fewer seeds and epochs (a smoke run of the suite)")
    args = ap.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        seeds = ["1", "50"] if args.quick or args.device == "cpu" else ["1", "50", "500"]
        run([py, str(HERE / "bench_szt.py"), "--device", args.device, "--seeds", *seeds, "--json", str(t / "szt.json")])
        run([py, str(HERE / "bench_estimators.py"), "--device", args.device, "--json", str(t / "est.json")]
            + (["--sizes", "szt"] if args.quick else [])
            + (["--seeds", "50"] if args.device != "cpu" and not args.quick else []))  # the KDE target is at 50
        epochs = "200" if args.quick else "8000"
        t0 = time.perf_counter()
        run([py, "-m", "ibtui", "scenarios/szt_tanh.toml", "--device", args.device, "--set", "run.seeds=50",
             "--set", f"run.epochs={epochs}", "--set", "measure.kde.points=0" if args.device != "cpu" else
             "measure.kde.points=1024", "--export", str(t / "run.csv"), "--quiet"])
        end_to_end = time.perf_counter() - t0
        print(f"end-to-end szt_tanh, 50 seeds, {epochs} epochs, binning + KDE at 300 snapshots: {end_to_end:.1f} s")
        out = {"device": args.device, "szt": json.loads((t / "szt.json").read_text()),
               "estimators": json.loads((t / "est.json").read_text()),
               "end_to_end": {"scenario": "szt_tanh", "seeds": 50, "epochs": int(epochs), "seconds": end_to_end}}
        if args.device != "cpu":  # the target run: 10k epochs, binning (and the dynamics probe), 300 snapshots
            epochs = "500" if args.quick else "10000"
            for graph in ("false", "true"):
                t0 = time.perf_counter()
                run([py, "-m", "ibtui", "scenarios/szt_tanh.toml", "--device", args.device, "--set", "run.seeds=50",
                     "--set", f"run.epochs={epochs}", "--set", 'measure.estimators=["binning"]',
                     "--set", f"run.cuda_graph={graph}", "--export", str(t / "run.csv"), "--quiet"])
                seconds = time.perf_counter() - t0
                print(f"end-to-end szt_tanh, 50 seeds, {epochs} epochs, binning at 300 snapshots, "
                      f"cuda_graph={graph}: {seconds:.1f} s")
                out[f"end_to_end_binning_graph_{graph}"] = {"epochs": int(epochs), "seconds": seconds}
    args.json.write_text(json.dumps(out, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
