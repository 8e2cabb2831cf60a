"""One entry point for ibtui's speed figures: runs the benchmarks and prints one table (and writes JSON).

    python benchmarks/run_all.py --device cpu|cuda [--json benchmarks.json] [--quick]
                                 [--skip-training] [--skip-estimators] [--skip-default-run]

Parts, on the device given: training rates (bench_szt: the engine with binning on and off against a plain
per-seed PyTorch loop, 50 seeds), each MI estimator's cost a snapshot at SZT size (bench_estimators: binning,
KDE on all 4096 points and on the default 1024, SP; 20 seeds, all layers; `--mnist` adds MNIST sizes), and the
default run end to end (`python -m ibtui szt_tanh --headless`, the real CLI in a subprocess, start-up
included) with what its checkpoints add (bench_checkpoint). The "before" column holds the figures measured on the tree before issue 20 (2-core CPU, quiet).
On a quiet 2-core CPU the whole suite takes about 8–10 minutes; --quick makes a smoke run of it.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

# Measured on the tree before issue 20 (2-core CPU, quiet; docs/PERFORMANCE.md).
BEFORE = {"plain loop, 50 seeds (seed-epochs/s)": 103.6, "engine, binning on (seed-epochs/s)": 1552.7,
          "engine, measurement off (seed-epochs/s)": 1290.9, "engine on / plain loop": 15.0,
          "binning (30 bins)": 0.067, "KDE upper+lower σ²=0.001, all N, fused attention": 12.791,
          "KDE upper+lower σ²=0.001, all N, pairwise sums": 30.638,
          "SP k=4 mc=2 points=256 (hidden layers)": 12.619, "default run, end to end (s)": 414.1}


def run(cmd: list[str]) -> None:
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=REPO, check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", type=Path, default=Path("benchmarks.json"))
    ap.add_argument("--quick", action="store_true", help="fewer seeds and epochs (a smoke run of the suite)")
    ap.add_argument("--mnist", action="store_true", help="estimator costs at MNIST sizes too (slow on a CPU)")
    ap.add_argument("--skip-training", action="store_true")
    ap.add_argument("--skip-estimators", action="store_true")
    ap.add_argument("--skip-default-run", action="store_true")
    args = ap.parse_args()
    py = sys.executable
    table: list[tuple[str, float, str]] = []  # (what, value, unit)
    out: dict = {"device": args.device, "cpus": os.cpu_count(), "load_at_start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        if not args.skip_training:
            run([py, str(HERE / "bench_szt.py"), "--device", args.device, "--seeds", "50", "--json", str(t / "szt.json")]
                + (["--epochs", "40", "--plain-epochs", "5"] if args.quick else []))
            r = json.loads((t / "szt.json").read_text())[0]
            out["szt"] = r
            table += [("plain loop, 50 seeds (seed-epochs/s)", r["plain_seed_epochs_per_s"], ""),
                      ("engine, binning on (seed-epochs/s)", r["engine_measure_on"], ""),
                      ("engine, measurement off (seed-epochs/s)", r["engine_measure_off"], ""),
                      ("engine on / plain loop", r["ratio_on"], "×")]
            for name, rate in r.get("builds", {}).items():  # the compiled step built for another target (IBTUI_CFLAGS)
                table += [(f"engine, compiled step built for {name}, binning on (seed-epochs/s)", rate, ""),
                          (f"engine, {name} build / plain loop", rate / r["plain_seed_epochs_per_s"], "×")]
            if "pytorch_step_measure_on" in r:  # the engine with PyTorch's training step (run.compiled_step = false)
                table += [("engine with PyTorch's step, binning on (seed-epochs/s)", r["pytorch_step_measure_on"], ""),
                          ("engine with PyTorch's step / plain loop", r["pytorch_step_ratio_on"], "×")]
        if not args.skip_estimators:
            run([py, str(HERE / "bench_estimators.py"), "--device", args.device, "--json", str(t / "est.json"),
                 "--seeds", "5" if args.quick else "20", "--sizes", "szt", *(["mnist"] if args.mnist else [])])
            out["estimators"] = json.loads((t / "est.json").read_text())
            table += [(e["estimator"] + ("" if e["size"] == "szt" else f" ({e['size']})"), e["seconds"], "s")
                      for e in out["estimators"]]
        if not args.skip_default_run:
            cmd = [py, "-m", "ibtui", "szt_tanh", "--headless", "--device", args.device, "--quiet",
                   "-o", str(t / "run.csv")] + (["--set", "run.epochs=200"] if args.quick else [])
            t0 = time.perf_counter()
            run(cmd)
            out["default_run_s"] = time.perf_counter() - t0
            table.append(("default run, end to end (s)" + (" [quick: 200 epochs]" if args.quick else ""),
                          out["default_run_s"], "s"))
            from bench_checkpoint import checkpoint_cost  # ibtui resume: one checkpoint a minute

            c = checkpoint_cost(run_seconds=out["default_run_s"], train_epochs=5 if args.quick else 50)
            out["checkpoint"] = c
            table += [("checkpoint of the default run (kB)", c["bytes"] / 1e3, ""),
                      ("checkpoint written (s)", c["save_s"], "s"),
                      ("checkpoints added to the default run (%)", 100 * c["added_fraction"], "%")]
    load = os.getloadavg()[0]
    print(f"\nibtui benchmarks on {args.device}, {os.cpu_count()} CPUs, 1-min load {out['load_at_start']:.1f} at the "
          f"start and {load:.1f} at the end" + (" (quick)" if args.quick else ""))
    print(f"  {'what':58} {'now':>10} {'before':>10}")
    for what, value, unit in table:
        before = BEFORE.get(what)
        print(f"  {what:58} {value:9.3f}{unit or ' '} {'' if before is None else f'{before:9.3f}{unit or chr(32)}':>10}")
    out["table"] = [{"what": w, "value": v, "unit": u, "before": BEFORE.get(w)} for w, v, u in table]
    args.json.write_text(json.dumps(out, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
