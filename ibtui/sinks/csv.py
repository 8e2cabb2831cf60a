"""The CSV export: the record stream in tidy long format, written as the run goes, plus a JSON sidecar.

Each snapshot's rows are written in one `write` call and flushed, so an interrupted run leaves a valid
CSV of every finished snapshot. The sidecar (`run.meta.json` beside `run.csv`) holds the resolved
scenario, versions, device, times and whether the run finished; it is replaced atomically.
"""
from __future__ import annotations

import csv
import io
import json
import os
import platform
import sys
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from ibtui.records import FIELDS, Record, RunInfo, Sink


def sidecar_path(csv_path: str | Path) -> Path:
    p = Path(csv_path)
    return p.with_name(p.stem + ".meta.json")


def versions() -> dict[str, str]:
    import numpy
    import scipy
    import torch

    import ibtui

    return {"ibtui": getattr(ibtui, "__version__", "?"), "python": platform.python_version(),
            "torch": torch.__version__, "numpy": numpy.__version__, "scipy": scipy.__version__,
            "cuda": str(torch.version.cuda)}


def format_value(v: float) -> str:
    """Shortest text that reads back to the same float32-derived value (repr), nan/inf spelled out."""
    return repr(float(v))


class CsvSink(Sink):
    def __init__(self, path: str | Path, scenario: dict, scenario_toml: str, extra_meta: dict | None = None):
        self.path = Path(path)
        self.meta_path = sidecar_path(self.path)
        self._file = open(self.path, "w", newline="", encoding="utf-8")
        self._file.write(",".join(FIELDS) + "\n")
        self._file.flush()
        self.rows = 0
        self.meta = {
            "format": "ibtui-records-v1",
            "columns": list(FIELDS),
            "csv": self.path.name,
            "scenario": scenario,
            "scenario_toml": scenario_toml,
            "versions": versions(),
            "command": " ".join(sys.argv),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "ended": None,
            "finished": False,
            **(extra_meta or {}),
        }
        self._write_meta()

    def start(self, info: RunInfo) -> None:
        """Called once per engine: once for a run, once per point for a sweep (kept in sweep_points)."""
        if "run_info" not in self.meta:
            self.meta["run_info"] = asdict(info)
        if info.sweep:
            self.meta.setdefault("sweep_points", []).append(asdict(info))
        self._write_meta()

    def emit(self, records: list[Record]) -> None:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        for r in records:
            writer.writerow((r.run, r.sweep, r.seed, r.epoch, r.step, r.layer, r.quantity, r.estimator,
                             format_value(r.value)))
        self._file.write(buf.getvalue())  # one write per snapshot: a crash never leaves half a snapshot
        self._file.flush()
        self.rows += len(records)

    def close(self, finished: bool) -> None:
        if self._file.closed:
            return
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self.meta["ended"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.meta["finished"] = bool(finished)
        self.meta["rows"] = self.rows
        self._write_meta()

    def _write_meta(self) -> None:
        tmp = self.meta_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.meta, indent=2, default=str), encoding="utf-8")
        os.replace(tmp, self.meta_path)


def read_records(path: str | Path) -> list[Record]:
    """Read an exported CSV back into records (seed "mean" stays a string; values are floats)."""
    out = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        for row in reader:
            seed = row["seed"]
            out.append(Record(row["run"], int(seed) if seed.lstrip("-").isdigit() else seed, int(row["epoch"]),
                              int(row["step"]), row["layer"], row["quantity"], row["estimator"], float(row["value"]),
                              row.get("sweep", "")))
    return out


def rank_path(export: Path, rank: int) -> Path:
    return export.with_name(f"{export.stem}.rank{rank}{export.suffix}")


def merge(export: Path, world: int) -> int:
    """torchrun: merge the rank files into `export` and its sidecar; returns the number of rows written.

    The mean rows are recomputed over all ranks' seeds in float32, as the engine computes them for one process.
    """
    import torch

    from ibtui.measures.seeds import seed_mean

    parts = [rank_path(export, r) for r in range(world)]
    rows_by_rank = []
    for p in parts:
        with open(p, newline="", encoding="utf-8") as f:
            rows_by_rank.append(list(csv.DictReader(f)))
    # Every rank emits the same keys in the same order; walk rank 0's rows and gather the seeds of all ranks.
    seeds_of: dict[tuple, list[dict]] = {}
    for rows in rows_by_rank:
        for row in rows:
            if row["seed"] != "mean":
                seeds_of.setdefault(_key(row), []).append(row)
    out: list[list[str]] = []
    for row in rows_by_rank[0]:
        key = _key(row)
        if row["seed"] != "mean":
            continue
        per_seed = seeds_of.pop(key, [])
        if per_seed:
            out.extend([r[f] for f in FIELDS] for r in per_seed)
            mean = seed_mean(torch.tensor([float(r["value"]) for r in per_seed], dtype=torch.float32))
            out.append([*(row[f] for f in FIELDS[:-1]), format_value(mean)])
        else:  # a run-wide record (noise level), identical on every rank
            out.append([row[f] for f in FIELDS])
    for key, rest in seeds_of.items():  # records without a mean row (a diverged seed's marker)
        out.extend([r[f] for f in FIELDS] for r in rest)
    tmp = export.with_suffix(export.suffix + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(FIELDS)
        w.writerows(out)
    os.replace(tmp, export)
    metas = [json.loads(sidecar_path(p).read_text()) for p in parts]
    meta = dict(metas[0])
    meta["csv"] = export.name
    meta["rows"] = len(out)
    meta["finished"] = all(m.get("finished") for m in metas)
    meta["ended"] = max((m.get("ended") or "") for m in metas) or None
    meta["distributed"] = {"world_size": world, "ranks": [m.get("run_info", {}).get("seeds") for m in metas]}
    meta["scenario"]["run"]["first_seed"] = min(m["scenario"]["run"]["first_seed"] for m in metas)
    meta["scenario"]["run"]["seeds"] = sum(m["scenario"]["run"]["seeds"] for m in metas)
    sidecar_path(export).write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
    for p in parts:
        p.unlink()
        sidecar_path(p).unlink()
    return len(out)


def _key(row: dict) -> tuple:
    return (row["run"], row["sweep"], row["epoch"], row["step"], row["layer"], row["quantity"], row["estimator"])
