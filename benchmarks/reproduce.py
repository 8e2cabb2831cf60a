#!/usr/bin/env python
"""Reproduce the papers' headline claims with ibtui and write docs/REPRODUCTION.md (issue 16, parts 3–5).

One command regenerates every number (and figure) of the report:

    python benchmarks/reproduce.py                 # CPU-sized default set (~30 min on 2 cores), then the report
    python benchmarks/reproduce.py --only szt_tanh # one claim (its runs, then the whole report from what exists)
    python benchmarks/reproduce.py --report-only   # no training: rebuild the report from the CSVs already there
    python benchmarks/reproduce.py --force         # rerun claims whose CSV already exists
    python benchmarks/reproduce.py --full --device cuda   # the papers' scale (a GPU; hours)

Each run goes through the real CLI (`python -m ibtui SCENARIO --headless --quiet --export OUT/run.csv --set …`)
and is resumable: a run whose CSV and finished sidecar exist is skipped unless --force. The analysis reads
only those CSVs (and the sidecars' settings); no result is written by hand. Verdicts follow fixed rules stated
in each claim's text (e.g. "compresses" = the mean over seeds of a layer's I(X;T) falls by ≥ 0.5 bits after its
peak).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import resource
import shlex
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SCEN = "ibtui/scenarios"
DOC = ROOT / "docs" / "REPRODUCTION.md"
FIGDIR = ROOT / "docs" / "figures"
FULL = False  # set by --full

# --------------------------------------------------------------------------------------------- runs


@dataclass
class RunSpec:
    """One CLI run: scenario + overrides at CPU scale (`sets`) and at paper scale (`full`)."""

    name: str
    scenario: str
    sets: list[str]
    full: list[str] = field(default_factory=list)
    data: str = ""          # sub-folder of the data dir at CPU scale ("" = none needed)
    full_data: str = ""     # at paper scale
    gpu_note: str = ""      # why the paper-scale run needs a GPU (shown in the report)

    def settings(self) -> list[str]:
        return self.full if FULL else self.sets

    def command(self, out: Path, data_dir: Path, threads: int, device: str) -> list[str]:
        cmd = [sys.executable, "-m", "ibtui", f"{SCEN}/{self.scenario}.toml", "--headless", "--quiet",
               "--export", str(out / f"{self.name}.csv"), "--device", device]
        if threads:
            cmd += ["--threads", str(threads)]
        sub = self.full_data if FULL else self.data
        if sub:
            cmd += ["--data-dir", str(data_dir / sub) if sub != "." else str(data_dir)]
        for s in self.settings():
            cmd += ["--set", s]
        return cmd


def _s(**kw) -> list[str]:
    """--set list from keyword pairs: _s(**{"run.seeds": 5}) → ["run.seeds=5"]."""
    out = []
    for k, v in kw.items():
        if isinstance(v, (list, tuple)):
            v = "[" + ",".join(json.dumps(x) for x in v) + "]"
        elif isinstance(v, bool):
            v = "true" if v else "false"
        out.append(f"{k}={v}")
    return out


def S(d: dict) -> list[str]:
    return _s(**d)


RUNS: dict[str, RunSpec] = {}


def run_spec(name, scenario, sets, full=(), data="", full_data="", gpu_note=""):
    RUNS[name] = RunSpec(name, scenario, S(sets), S(dict(full)) if full else [], data, full_data, gpu_note)
    return RUNS[name]


# ---- the runs (CPU sizes calibrated on the 2-core machine; the report gives each run's wall and CPU time)
run_spec("szt_tanh", "szt_tanh",
         {"run.seeds": 5, "run.epochs": 3000, "measure.snapshots": 80},
         {"run.seeds": 50, "run.epochs": 8000, "measure.kde.points": 0})
run_spec("szt_relu", "szt_relu",
         {"run.seeds": 5, "run.epochs": 3000, "measure.snapshots": 80},
         {"run.seeds": 50, "run.epochs": 10000})
run_spec("szt_tanh_fullbatch", "szt_tanh",
         {"run.seeds": 5, "run.epochs": 6000, "measure.snapshots": 80, "train.batch_size": 4096,
          "measure.dynamics.enabled": False},
         {"run.seeds": 50, "run.epochs": 20000, "train.batch_size": 4096, "measure.kde.points": 0,
          "measure.dynamics.enabled": False})
run_spec("szt_orthonormal", "szt_noisy_orthonormal",
         {"run.seeds": 3, "run.epochs": 2000, "measure.snapshots": 20, "measure.clustering.points": 1024},
         {"run.seeds": 10, "run.epochs": 8000, "measure.sp.points": 256},
         gpu_note="10 seeds, 8000 epochs, SP over 256 inputs")
run_spec("saturation_sweep", "saturation_sweep", {}, {})
run_spec("saturation_toy", "saturation_toy",
         {"run.seeds": 3, "run.epochs": 20000, "measure.snapshots": 50},
         {"run.seeds": 10})
run_spec("szt_batch_sweep", "szt_batch_sweep",
         {"run.seeds": 3, "run.epochs": 1000, "measure.snapshots": 60, "sweep.values": [64, 128, 256, 512, 1024]},
         {"run.seeds": 50, "run.epochs": 8000, "sweep.values": [32, 64, 128, 256, 512, 1024]})
run_spec("mnist_batch_sweep", "mnist_batch_sweep",
         {"run.seeds": 2, "run.epochs": 30, "measure.snapshots": 25, "sweep.values": [32, 64, 128, 256, 512]},
         {"run.seeds": 10, "run.epochs": 200}, data="mnist-5k", full_data="mnist",
         gpu_note="full MNIST, 10 seeds, 200 epochs per batch size")
run_spec("szt_depth_sweep", "szt_depth_sweep",
         {"run.seeds": 5, "run.epochs": 3000, "measure.snapshots": 80, "measure.estimators": []},
         {"run.seeds": 50, "run.epochs": 8000, "measure.estimators": []})
run_spec("mnist_depth_sweep", "mnist_depth_sweep",
         {"run.seeds": 2, "run.epochs": 40, "measure.snapshots": 40},
         {"run.seeds": 10, "run.epochs": 200}, data="mnist-5k", full_data="mnist",
         gpu_note="full MNIST, 10 seeds, 200 epochs per depth")
run_spec("mnist_fc", "mnist_fc",
         {"run.seeds": 2, "run.epochs": 100, "measure.snapshots": 40},
         {"run.seeds": 10}, data="mnist-5k", full_data="mnist",
         gpu_note="full MNIST (60k/10k), 10 seeds, 200 epochs")
run_spec("cifar10_resnet32", "cifar10_resnet32",
         {"run.seeds": 1, "run.epochs": 2, "measure.snapshots": 3, "data.mi_subset": 200},
         {"run.seeds": 50}, data=".", full_data=".",
         gpu_note="full CIFAR-10 (50k/10k), 50 seeds, 164 epochs = 64k iterations: hours on a GPU")
run_spec("boolean4", "boolean4",
         {"run.seeds": 5, "run.epochs": 300, "measure.snapshots": 40},
         {"run.seeds": 10})
# part 3: which measurement shows the MNIST plane (mnist_fc above is the third candidate: 2 bins + KDE σ² = 1)
run_spec("mnist_mi_bin30_kde0.1", "mnist_fc",
         {"run.seeds": 2, "run.epochs": 100, "measure.snapshots": 30, "measure.dynamics.enabled": False,
          "measure.binning.bins": 30, "measure.kde.noise_variance": 0.1}, data="mnist-5k")
run_spec("mnist_mi_bin4_kde0.01", "mnist_fc",
         {"run.seeds": 2, "run.epochs": 100, "measure.snapshots": 30, "measure.dynamics.enabled": False,
          "measure.binning.bins": 4, "measure.kde.noise_variance": 0.01}, data="mnist-5k")


# --------------------------------------------------------------------------------------------- data


class Csv:
    """An exported run: series by (sweep, seed, layer, quantity, estimator) → {epoch: value}."""

    def __init__(self, path: Path):
        self.path = path
        self.d: dict = defaultdict(dict)
        self.steps: dict = {}
        with open(path, newline="") as f:
            r = csv.reader(f)
            next(r)
            for _run, sweep, seed, epoch, step, layer, q, est, v in r:
                e = int(epoch)
                self.d[(sweep, seed, layer, q, est)][e] = float(v)
                self.steps[(sweep, e)] = int(step)
        side = path.with_name(path.stem + ".meta.json")
        self.meta = json.loads(side.read_text()) if side.exists() else {}
        t = path.with_name(path.stem + ".time.json")
        self.time = json.loads(t.read_text()) if t.exists() else {}
        self.sc = self.meta.get("scenario", {})

    def series(self, q, est="", layer="", seed="mean", sweep="") -> tuple[np.ndarray, np.ndarray]:
        s = self.d.get((sweep, seed, str(layer), q, est), {})
        e = np.array(sorted(s), dtype=float)
        return e, np.array([s[int(x)] for x in e], dtype=float)

    def seeds(self, sweep="") -> list[str]:
        return sorted({k[1] for k in self.d if k[0] == sweep and k[1] != "mean"}, key=int)

    def sweeps(self) -> list[str]:
        return sorted({k[0] for k in self.d}, key=lambda s: float(s.split("=")[1]) if "=" in s else 0)

    def layers(self) -> list[str]:
        return [str(x) for x in self.meta.get("run_info", {}).get("layers", [])]

    def steps_per_epoch(self, sweep="") -> float:
        pts = [(e, s) for (sw, e), s in self.steps.items() if sw == sweep and e > 0]
        return max(s / e for e, s in pts) if pts else math.nan

    def estimators(self, q="I(X;T)") -> list[str]:
        return sorted({k[4] for k in self.d if k[3] == q})


def peak_drop(e: np.ndarray, v: np.ndarray) -> dict:
    """Peak of a series, its epoch, the final value and the fall from peak to the end (bits)."""
    if len(v) == 0 or not np.isfinite(v).any():
        return {"peak": math.nan, "peak_epoch": math.nan, "start": math.nan, "final": math.nan, "drop": math.nan,
                "rise": math.nan}
    i = int(np.nanargmax(v))
    return {"peak": float(v[i]), "peak_epoch": float(e[i]), "start": float(v[0]), "final": float(v[-1]),
            "drop": float(v[i] - v[-1]), "rise": float(v[i] - v[0])}


def f2(x, nd=2):
    return "–" if x is None or not np.isfinite(x) else f"{x:.{nd}f}"


def g3(x):
    return "–" if x is None or not np.isfinite(x) else f"{x:.3g}"


def mean_sd(vals) -> tuple[float, float, int]:
    v = np.array([x for x in vals if x is not None and np.isfinite(x)], dtype=float)
    if len(v) == 0:
        return math.nan, math.nan, 0
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan, len(v)


def ms(vals, nd=3) -> str:
    m, sd, n = mean_sd(vals)
    if n == 0:
        return "–"
    return f"{m:.{nd}g} ± {sd:.2g} (n={n})" if np.isfinite(sd) else f"{m:.{nd}g} (n={n})"


def finished(out: Path, name: str) -> bool:
    side = out / f"{name}.meta.json"
    if not (out / f"{name}.csv").exists() or not side.exists():
        return False
    try:
        return bool(json.loads(side.read_text()).get("finished"))
    except (OSError, ValueError):
        return False


def execute(spec: RunSpec, out: Path, data_dir: Path, threads: int, device: str, force: bool) -> None:
    """Run one scenario through the CLI (skipped when its finished CSV exists), timing wall and CPU."""
    if finished(out, spec.name) and not force:
        print(f"[reproduce] {spec.name}: finished CSV exists, skipped (--force reruns it)", file=sys.stderr)
        return
    cmd = spec.command(out, data_dir, threads, device)
    print(f"[reproduce] {spec.name}: {shlex.join(cmd[1:])}", file=sys.stderr, flush=True)
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    (out / f"{spec.name}.time.json").write_text(json.dumps(
        {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "rc": proc.returncode, "threads": threads,
         "device": device, "full": FULL, "command": display_command(spec, threads, device)}, indent=1))
    print(f"[reproduce] {spec.name}: rc {proc.returncode}, {wall:.0f} s wall, {cpu:.0f} s CPU", file=sys.stderr)


def display_command(spec: RunSpec, threads: int = 1, device: str = "cpu") -> str:
    """The command as a reader types it (data folder and output folder as variables)."""
    parts = ["python -m ibtui", f"{SCEN}/{spec.scenario}.toml", "--headless --quiet",
             f"--export $OUT/{spec.name}.csv", f"--device {device}"]
    if threads:
        parts.append(f"--threads {threads}")
    sub = spec.full_data if FULL else spec.data
    if sub:
        parts.append("--data-dir $DATA" + ("" if sub == "." else f"/{sub}"))
    parts += [f"--set {shlex.quote(s)}" for s in spec.settings()]
    return " ".join(parts)


# --------------------------------------------------------------------------------------------- figures

def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 8, "axes.titlesize": 9, "legend.fontsize": 7, "figure.dpi": 100})
    return plt


def save(fig, name: str) -> str:
    FIGDIR.mkdir(parents=True, exist_ok=True)
    path = FIGDIR / f"{name}.png"
    fig.savefig(path, dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return f"figures/{name}.png"


def plane_axes(ax, run: Csv, est: str, layers=None, sweep="", title="", ceiling=None, yest=None):
    """Mean information plane: I(X;T) vs I(T;Y) per layer, colour = epoch (log)."""
    import matplotlib.cm as cm
    import matplotlib.colors as mcolors

    layers = layers or run.layers()
    yest = yest or est
    epochs = run.series("I(X;T)", est, layers[0], sweep=sweep)[0]
    norm = mcolors.LogNorm(vmin=max(1, epochs[epochs > 0].min() if (epochs > 0).any() else 1),
                           vmax=max(2, epochs.max() if len(epochs) else 2))
    for lay in layers:
        e, x = run.series("I(X;T)", est, lay, sweep=sweep)
        _, y = run.series("I(T;Y)", yest, lay, sweep=sweep)
        if len(x) == 0 or len(y) != len(x):
            continue
        ax.plot(x, y, "-", color="0.75", lw=0.6, zorder=1)
        sc = ax.scatter(x, y, c=np.maximum(e, 1), cmap=cm.viridis, norm=norm, s=8, zorder=2)
        ax.annotate(f"T{lay}", (x[-1], y[-1]), fontsize=7, xytext=(3, -3), textcoords="offset points")
    if ceiling:
        ax.axvline(ceiling, color="r", ls=":", lw=0.8)
        ax.text(ceiling, ax.get_ylim()[0], f" log2 N = {ceiling:.2f}", color="r", fontsize=7, rotation=90,
                va="bottom", ha="right")
    ax.set_xlabel(f"I(X;T) [bits, {est}]")
    ax.set_ylabel(f"I(T;Y) [bits, {yest}]")
    ax.set_title(title)
    try:
        cb = ax.figure.colorbar(sc, ax=ax, pad=0.01)
        cb.set_label("epoch")
    except UnboundLocalError:
        pass


def curves_axes(ax, run: Csv, q: str, est: str, layers, sweep="", ylabel="", logx=True, logy=False, seed="mean",
                label_fmt="T{}"):
    for lay in layers:
        e, v = run.series(q, est, lay, seed=seed, sweep=sweep)
        ok = np.isfinite(v)
        if logx:
            ok &= e > 0
        if ok.any():
            ax.plot(e[ok], v[ok], "-", lw=1, label=label_fmt.format(lay))
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel or f"{q} {est}")


# --------------------------------------------------------------------------------------------- claims

@dataclass
class Result:
    measured: str           # markdown: the numbers
    verdict: str            # reproduced / partially / not reproduced
    why: str                # one paragraph
    figures: list = field(default_factory=list)
    key: str = ""           # one line for the summary table


@dataclass
class Claim:
    name: str
    title: str              # the claim in one line
    source: str
    runs: list
    analyze: Callable
    note: str = ""          # scale / GPU / pending-feature remarks


CLAIMS: list[Claim] = []


def claim(name, title, source, runs, note=""):
    def deco(fn):
        CLAIMS.append(Claim(name, title, source, runs, fn, note))
        return fn
    return deco


# --------------------------------------------------------------------------------------------- main

def run_header(runs: list[Csv]) -> str:
    """Seeds, epochs, device and time of the runs behind a claim."""
    parts = []
    for r in runs:
        sc, t = r.sc, r.time
        seeds = sc.get("run", {}).get("seeds", "?")
        epochs = sc.get("run", {}).get("epochs", "?")
        dev = r.meta.get("device", "?")
        sw = sc.get("sweep", {})
        swt = f", sweep {sw['setting']} = {sw['values']}" if sw.get("setting") else ""
        data = sc.get("data", {}).get("dir", "")
        data = f", data {Path(data).name}" if data else ""
        tt = f", {t.get('wall_s', '?')} s wall / {t.get('cpu_s', '?')} s CPU" if t else ""
        parts.append(f"`{r.path.stem}`: {seeds} seeds, {epochs} epochs{swt}{data}, device {dev}{tt}")
    return "; ".join(parts)


def main(argv=None) -> int:
    global FULL
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("IBTUI_REPRO_OUT", ROOT / "repro_out")),
                    help="folder for the run CSVs (default $IBTUI_REPRO_OUT or ./repro_out)")
    ap.add_argument("--data-dir", type=Path, default=Path(os.environ.get("IBTUI_DATA", "/work/shared/data")),
                    help="folder holding mnist/, mnist-5k/ and cifar-10-batches-py/ (default $IBTUI_DATA)")
    ap.add_argument("--only", action="append", default=[], help="run (and report) only this claim (repeatable)")
    ap.add_argument("--force", action="store_true", help="rerun runs whose finished CSV exists")
    ap.add_argument("--full", action="store_true", help="the papers' scale (a GPU; hours)")
    ap.add_argument("--device", default="cpu", help="device for every run (default cpu)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads per run (default 1)")
    ap.add_argument("--report-only", action="store_true", help="train nothing; rebuild the report from the CSVs")
    ap.add_argument("--no-report", action="store_true", help="only run; do not write the report")
    ap.add_argument("--list", action="store_true", help="list the claims and their runs")
    a = ap.parse_args(argv)
    FULL = a.full
    names = {c.name for c in CLAIMS}
    for n in a.only:
        if n not in names:
            ap.error(f"--only {n}: no such claim; one of: {', '.join(sorted(names))}")
    if a.list:
        for c in CLAIMS:
            print(f"{c.name:24s} runs: {', '.join(c.runs)}")
        return 0
    out = a.out / "full" if FULL else a.out
    out.mkdir(parents=True, exist_ok=True)
    todo = [c for c in CLAIMS if not a.only or c.name in a.only]
    if not a.report_only:
        seen = set()
        for c in todo:
            for rn in c.runs:
                if rn not in seen:
                    seen.add(rn)
                    execute(RUNS[rn], out, a.data_dir, a.threads, a.device, a.force)
    if not a.no_report:
        write_report(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
