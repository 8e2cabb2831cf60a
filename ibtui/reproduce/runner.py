"""The runs behind the claims: one scenario and its overrides at each scale, run through the CLI, read back.

Scales: `cpu` (minutes, the default), `medium` (at least twice the seeds, the papers' epochs where the SZT runs
allow, full MNIST where affordable: about 3 h on 2 cores) and `full` (the papers' scale, for a GPU). A run is
resumable: one whose export and finished sidecar exist is skipped unless `force`. Exports are read by
`read_run`, the one place the claims touch a file (the export reader `ibtui plot` uses).
"""
from __future__ import annotations

import json
import math
import os
import resource
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ibtui.files import atomic_write

SCALES = ("cpu", "medium", "full")
# The cpu and medium exports behind docs/REPRODUCTION.md were made with PyTorch's training step and the KDE bounds
# summed by the compiled tile kernel (the rule before measure.kde.path = auto); the compiled step (run.compiled_step,
# the default since) and the other KDE paths round differently, so these scales pin both and regenerate those
# exports exactly. The full scale, never run on a CPU, takes the defaults.
AS_MADE = {scale: {"run.compiled_step": False, "measure.kde.path": "compiled"} for scale in ("cpu", "medium")}


def _sets(d: dict) -> list[str]:
    """--set list from a dict: {"run.seeds": 5} → ["run.seeds=5"]."""
    out = []
    for k, v in d.items():
        if isinstance(v, (list, tuple)):
            v = "[" + ",".join(json.dumps(x) for x in v) + "]"
        elif isinstance(v, bool):
            v = "true" if v else "false"
        out.append(f"{k}={v}")
    return out


@dataclass
class RunSpec:
    """One CLI run: a bundled scenario and its overrides and data folder at each scale."""

    name: str
    scenario: str
    sets: dict                      # scale → {setting: value}
    data: dict = field(default_factory=dict)   # scale → sub-folder of the data dir ("" none, "." the dir itself)
    medium_cost: float = 1.0        # estimated work of the medium run over the cpu run (seeds × epochs × data)
    gpu_note: str = ""              # why the paper-scale run needs a GPU

    def settings(self, scale: str) -> list[str]:
        given = self.sets.get(scale, {})
        return _sets({**given, **{k: v for k, v in AS_MADE.get(scale, {}).items() if k not in given}})

    def data_dir(self, scale: str, root: Path) -> Path | None:
        sub = self.data.get(scale, "")
        return None if not sub else (root if sub == "." else root / sub)

    def command(self, scale: str, out: Path, data_root: Path, threads: int, device: str) -> list[str]:
        cmd = [sys.executable, "-m", "ibtui", self.scenario, "--headless", "--quiet",
               "--export", str(out / f"{self.name}.csv"), "--device", device]
        if threads:
            cmd += ["--threads", str(threads)]
        d = self.data_dir(scale, data_root)
        if d is not None:
            cmd += ["--data-dir", str(d)]
        for s in self.settings(scale):
            cmd += ["--set", s]
        return cmd

    def display(self, scale: str, threads: int = 1, device: str = "cpu") -> str:
        """The command as a reader types it (data and output folders as variables)."""
        parts = [f"ibtui {self.scenario}", "--headless --quiet", f"--export $OUT/{self.name}.csv", f"--device {device}"]
        if threads:
            parts.append(f"--threads {threads}")
        sub = self.data.get(scale, "")
        if sub:
            parts.append("--data-dir $DATA" + ("" if sub == "." else f"/{sub}"))
        parts += [f"--set {shlex.quote(s)}" for s in self.settings(scale)]
        return " ".join(parts)


RUNS: dict[str, RunSpec] = {}


def run_spec(name, scenario, cpu, medium, full, data="", medium_data=None, full_data=None, medium_cost=1.0,
             gpu_note="") -> RunSpec:
    """Register a run; `data` is the cpu data folder, the other scales default to it."""
    md = data if medium_data is None else medium_data
    fd = data if full_data is None else full_data
    RUNS[name] = RunSpec(name, scenario, {"cpu": cpu, "medium": medium, "full": full},
                         {"cpu": data, "medium": md, "full": fd}, medium_cost, gpu_note)
    return RUNS[name]


def runs_dir(out: Path, scale: str) -> Path:
    return out / "runs" / scale


def finished(folder: Path, name: str) -> bool:
    side = folder / f"{name}.meta.json"
    if not (folder / f"{name}.csv").exists() or not side.exists():
        return False
    try:
        return bool(json.loads(side.read_text()).get("finished"))
    except (OSError, ValueError):
        return False


def timing(folder: Path, name: str) -> dict:
    t = folder / f"{name}.time.json"
    try:
        return json.loads(t.read_text()) if t.exists() else {}
    except ValueError:
        return {}


def execute(spec: RunSpec, scale: str, folder: Path, data_root: Path, threads: int, device: str,
            force: bool) -> None:
    """Run one scenario through the CLI (skipped when its finished export exists), timing wall and CPU."""
    if finished(folder, spec.name) and not force:
        print(f"[reproduce] {spec.name} ({scale}): finished export exists, skipped (--force reruns it)",
              file=sys.stderr)
        return
    folder.mkdir(parents=True, exist_ok=True)
    cmd = spec.command(scale, folder, data_root, threads, device)
    if force or (folder / f"{spec.name}.csv").exists():   # --force, or an unfinished export of an earlier try
        cmd.append("--overwrite")
    print(f"[reproduce] {spec.name} ({scale}): {shlex.join(cmd[1:])}", file=sys.stderr, flush=True)
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env={**os.environ})
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    atomic_write(folder / f"{spec.name}.time.json", json.dumps(  # never through a link, never half written
        {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "rc": proc.returncode, "threads": threads,
         "device": device, "scale": scale, "command": spec.display(scale, threads, device)}, indent=1))
    print(f"[reproduce] {spec.name}: rc {proc.returncode}, {wall:.0f} s wall, {cpu:.0f} s CPU", file=sys.stderr)


class Run:
    """An exported run: series by (sweep, seed, layer, quantity, estimator) → {epoch: value}, and its sidecar."""

    def __init__(self, path: Path, d: dict, steps: dict, meta: dict, time_: dict):
        self.path, self.d, self.steps, self.meta, self.time = path, d, steps, meta, time_
        self.sc = meta.get("scenario", {}) if isinstance(meta.get("scenario"), dict) else {}

    def series(self, q, est="", layer="", seed="mean", sweep="") -> tuple[np.ndarray, np.ndarray]:
        s = self.d.get((sweep, str(seed), str(layer), q, est), {})
        keys = sorted(s)   # whole epochs, and fractions for snapshots inside an epoch (measure.snapshot_unit = step)
        return np.array(keys, dtype=float), np.array([s[k] for k in keys], dtype=float)

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


def read_run(path: Path) -> Run:
    """THE read of an export: through ibtui's one export reader (sinks/runs.load, i.e. `ibtui.load`)."""
    from ibtui.sinks.runs import load

    ex = load(path)
    d: dict = {}
    steps: dict = {}
    for (sweep, q, est, layer, seed), rows in ex.rows.items():
        s = d.setdefault((sweep, str(seed), str(layer), q, est), {})
        for e, st, v in rows:
            s[e] = float(v)   # the epoch as the export holds it: an int, or a fraction inside an epoch
            steps[(sweep, e)] = int(st)
    return Run(path, d, steps, ex.meta or {}, timing(path.parent, path.stem))


def load_runs(folder: Path, names) -> list[Run] | None:
    if not all(finished(folder, n) for n in names):
        return None
    return [read_run(folder / f"{n}.csv") for n in names]
