"""The CSV export: the record stream in tidy long format, written as the run goes, plus a JSON sidecar.

Each snapshot's rows are written in one `write` call and flushed, so an interrupted run leaves a valid
CSV of every finished snapshot (read back by sinks/runs.py, the one reader). The sidecar (`run.meta.json`
beside `run.csv`) holds the resolved scenario, versions, device, times and whether the run finished; it is replaced atomically.
"""
from __future__ import annotations

import csv
import io
import json
import os
import platform
import socket
import sys
import tempfile
import time
import uuid
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from ibtui.records import FIELDS, Progress, Record, RunInfo, Sink


def sidecar_path(csv_path: str | Path) -> Path:
    p = Path(csv_path)
    return p.with_name(p.stem + ".meta.json")


def checkpoint_path(csv_path: str | Path) -> Path:
    """The checkpoint beside an export (ibtui resume): run.csv → run.checkpoint.pt (a rank's CSV gets its own)."""
    p = Path(csv_path)
    return p.with_name(p.stem + ".checkpoint.pt")


def versions() -> dict[str, str]:
    import numpy
    import scipy
    import torch

    from ibtui.version import __version__

    return {"ibtui": __version__, "python": platform.python_version(),
            "torch": torch.__version__, "numpy": numpy.__version__, "scipy": scipy.__version__,
            "cuda": str(torch.version.cuda)}


def format_value(v: float) -> str:
    """Shortest text that reads back to the same float32-derived value (repr), nan/inf spelled out."""
    return repr(float(v))


HEARTBEAT_S = 60.0  # while training, the sidecar's `alive` time is refreshed this often (ibtui view spots a dead run)


def _replace_text(path: Path, text: str) -> None:
    """Write `path` atomically: a temporary file in the same folder, then a rename (no stray file on failure)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def staging_path(path: Path) -> Path:
    """Where `--overwrite` writes a new file until its first snapshot (same folder, so the rename is atomic)."""
    return path.with_name(f".{path.name}.ibtui-new")


class CsvSink(Sink):
    """The CSV export and its sidecar.

    A new file is created exclusively (an existing one raises FileExistsError: an earlier run is never
    truncated). With `overwrite=True` the new CSV and sidecar are written under staging names in the same
    folder and renamed over the old ones once the first snapshot is on disk; a run that ends before that
    leaves the old files as they were (`replaced` stays False).
    """

    def __init__(self, path: str | Path, scenario: dict, scenario_toml: str, extra_meta: dict | None = None,
                 overwrite: bool = False):
        self.path = Path(path)
        self.meta_path = sidecar_path(self.path)
        self.overwrite = overwrite
        self.replaced = not overwrite  # True once the files at path and meta_path are this run's
        self.last_epoch: int | None = None  # epoch of the last snapshot written
        self._csv_out = staging_path(self.path) if overwrite else self.path
        self._meta_out = staging_path(self.meta_path) if overwrite else self.meta_path
        self._file = open(self._csv_out, "w" if overwrite else "x", newline="", encoding="utf-8")
        self._file.write(",".join(FIELDS) + "\n")
        self._file.flush()
        self.rows = 0
        self.size = len(",".join(FIELDS)) + 1  # bytes written so far (a checkpoint keeps it: resume truncates to it)
        self._beat = time.monotonic()
        self.meta = {
            "format": "ibtui-records-v1",
            "columns": list(FIELDS),
            "csv": self.path.name,
            "scenario": scenario,
            "scenario_toml": scenario_toml,
            "versions": versions(),
            "command": " ".join(sys.argv),
            "started": _now(),
            "ended": None,
            "finished": False,
            "writer": {"pid": os.getpid(), "host": socket.gethostname()},
            "run_id": uuid.uuid4().hex,  # a checkpoint names the run it belongs to (ibtui resume)
            "alive": _now(),
            **(extra_meta or {}),
        }
        try:
            self._write_meta()
        except BaseException:
            self._file.close()
            self._csv_out.unlink(missing_ok=True)
            raise

    @classmethod
    def resume(cls, path: str | Path, size: int, rows: int, last_epoch: int | None, from_epoch: int) -> "CsvSink":
        """Continue an interrupted export: cut it back to `size` bytes (the rows a checkpoint covers), append from
        there, and note the resume in the sidecar. The caller has checked the files (ibtui resume)."""
        self = cls.__new__(cls)
        self.path = Path(path)
        self.meta_path = sidecar_path(self.path)
        self.overwrite, self.replaced = False, True
        self._csv_out, self._meta_out = self.path, self.meta_path
        self.meta = json.loads(self.meta_path.read_text(encoding="utf-8"))
        self.rows, self.size, self.last_epoch = int(rows), int(size), last_epoch
        dropped = self.path.stat().st_size - self.size
        os.truncate(self.path, self.size)
        self._file = open(self.path, "a", newline="", encoding="utf-8")
        self._beat = time.monotonic()
        self.meta.update(ended=None, finished=False, alive=_now(), rows=self.rows,
                         writer={"pid": os.getpid(), "host": socket.gethostname()})
        self.meta.setdefault("resumes", []).append({"at": _now(), "from_epoch": int(from_epoch),
                                                    "dropped_bytes": int(dropped), "command": " ".join(sys.argv)})
        self._write_meta()
        return self

    def start(self, info: RunInfo) -> None:
        """Called once per engine: once for a run, once per point for a sweep (kept in sweep_points)."""
        if "run_info" not in self.meta:
            self.meta["run_info"] = asdict(info)
        points = self.meta.setdefault("sweep_points", []) if info.sweep else []
        if info.sweep and all(p.get("sweep") != info.sweep for p in points):  # a resumed point is listed once
            points.append(asdict(info))
        self._write_meta()

    def emit(self, records: list[Record]) -> None:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        for r in records:
            writer.writerow((r.run, r.sweep, r.seed, r.epoch, r.step, r.layer, r.quantity, r.estimator,
                             format_value(r.value)))
        text = buf.getvalue()
        self._file.write(text)  # one write per snapshot: a crash never leaves half a snapshot
        self._file.flush()
        self.rows += len(records)
        self.size += len(text.encode("utf-8"))
        if records:
            self.last_epoch = max(r.epoch for r in records)
        if not self.replaced:  # --overwrite: the new run has a snapshot, so now it replaces the old files
            os.fsync(self._file.fileno())
            os.replace(self._csv_out, self.path)
            self._csv_out = self.path
            self._meta_out.unlink(missing_ok=True)
            self._meta_out = self.meta_path
            checkpoint_path(self.path).unlink(missing_ok=True)  # the old run's: never resumed into this one
            self.replaced = True
            self._write_meta()

    def progress(self, p: Progress) -> None:
        now = time.monotonic()
        if now - self._beat >= HEARTBEAT_S and not self._file.closed:
            self._beat = now
            self.meta["alive"] = _now()
            try:
                self._write_meta()
            except OSError:
                pass  # a heartbeat is a courtesy to `ibtui view`; the CSV matters, and close() reports

    def close(self, finished: bool) -> None:
        if self._file.closed:
            return
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        if not self.replaced:  # no snapshot: the old run stays, the staged files go
            self._csv_out.unlink(missing_ok=True)
            self._meta_out.unlink(missing_ok=True)
            return
        self.meta["ended"] = _now()
        self.meta["finished"] = bool(finished)
        self.meta["rows"] = self.rows
        self._write_meta()

    def _write_meta(self) -> None:
        _replace_text(self._meta_out, json.dumps(self.meta, indent=2, default=str))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def export_targets(export: Path, rank: int | None = None) -> list[Path]:
    """Every file `--export` writes: the CSV and its sidecar, and under torchrun this rank's CSV and sidecar."""
    out = [export, sidecar_path(export)]
    if rank is not None:
        out += [rank_path(export, rank), sidecar_path(rank_path(export, rank))]
    return out


def check_targets(export: Path, overwrite: bool, rank: int | None = None) -> None:
    """Refuse (ExportError, one sentence) an export that cannot be written or would replace a run unasked.

    Runs before any engine work and without torch: the folder must exist and take a new file; a target that
    exists must be a plain, writable file, and is replaced only with `overwrite`.
    """
    from ibtui.errors import ExportError

    export = Path(export)
    folder = export.parent
    if not folder.is_dir():
        raise ExportError(f"--export {export}: the folder {folder} does not exist; create it or pick another path.")
    existing = []
    for target in export_targets(export, rank):
        if not (target.exists() or target.is_symlink()):
            continue
        if target.is_dir():
            raise ExportError(f"--export {export}: {target} is a folder, so the run's "
                              f"{'sidecar' if target.name.endswith('.meta.json') else 'CSV'} cannot be written "
                              f"there; pick another path.")
        if not target.is_file():
            raise ExportError(f"--export {export}: {target} is not a plain file; pick another path.")
        if overwrite and not os.access(target, os.W_OK):
            raise ExportError(f"--export {export}: {target} is read-only, so --overwrite will not replace it; "
                              f"pick another path or make it writable.")
        existing.append(target)
    if existing and not overwrite:
        names = " and ".join(str(p) for p in existing[:2]) + (f" (+{len(existing) - 2} more)" if len(existing) > 2 else "")
        raise ExportError(f"--export {export}: {names} already exist{'s' if len(existing) == 1 else ''} (an earlier "
                          f"run); pass --overwrite to replace {'it' if len(existing) == 1 else 'them'} once the new "
                          f"run has its first snapshot, or pick another path.")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".ibtui-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ExportError(f"--export {export}: cannot write in the folder {folder} "
                          f"({exc.strerror or exc}); pick another path.") from None


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
    _replace_text(sidecar_path(export), json.dumps(meta, indent=2, default=str))
    for p in parts:
        p.unlink()
        sidecar_path(p).unlink()
    return len(out)


def _key(row: dict) -> tuple:
    return (row["run"], row["sweep"], row["epoch"], row["step"], row["layer"], row["quantity"], row["estimator"])
