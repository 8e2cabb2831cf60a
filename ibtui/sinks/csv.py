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

from ibtui.engine.records import FIELDS, Record, RunInfo


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


class CsvSink:
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
