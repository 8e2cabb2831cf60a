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
import time
import uuid
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from ibtui.files import WriterLock, atomic_write, create_temp, process_start, write_all
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
    """Write `path` atomically (files.atomic_write: an exclusive temporary file in the same folder, then a rename)."""
    atomic_write(path, text)


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
        self._lock = WriterLock(self.path)  # a second writer to this target is refused, --overwrite or not
        try:
            if overwrite:  # unique, exclusively created staging names: never through a link, never shared
                fd, self._csv_out = create_temp(self.path, ".ibtui-new")
                self._meta_out = self._csv_out.with_name(self._csv_out.name + ".meta.json")
            else:
                self._csv_out, self._meta_out = self.path, self.meta_path
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)
        except BaseException:
            self._lock.release()
            raise
        self._file = open(fd, "wb", buffering=0)
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
            "writer": _writer(),
            "run_id": uuid.uuid4().hex,  # a checkpoint names the run it belongs to (ibtui resume)
            "alive": _now(),
            **(extra_meta or {}),
        }
        try:  # a failed start (disk full) leaves no file behind: an empty CSV would block the next run
            write_all(self._file.fileno(), (",".join(FIELDS) + "\n").encode())
            self._write_meta()
        except BaseException:
            self._file.close()
            self._csv_out.unlink(missing_ok=True)
            self._meta_out.unlink(missing_ok=True)
            self._lock.release()
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
        self._lock = WriterLock(self.path)
        self.meta = json.loads(self.meta_path.read_text(encoding="utf-8"))
        self.rows, self.size, self.last_epoch = int(rows), int(size), last_epoch
        dropped = self.path.stat().st_size - self.size
        os.truncate(self.path, self.size)
        self._file = open(self.path, "ab", buffering=0)
        self._beat = time.monotonic()
        self.meta.update(ended=None, finished=False, alive=_now(), rows=self.rows,
                         writer=_writer())
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
        data = buf.getvalue().encode("utf-8")
        try:  # one write per snapshot, unbuffered: a crash never leaves half a snapshot
            write_all(self._file.fileno(), data)
        except OSError:  # disk full mid-snapshot: cut back to the last whole snapshot, so every row is complete
            try:
                os.ftruncate(self._file.fileno(), self.size)
            except OSError:
                pass
            raise
        self.rows += len(records)
        self.size += len(data)
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
        try:
            os.fsync(self._file.fileno())
        finally:
            self._file.close()
        if not self.replaced:  # no snapshot: the old run stays, the staged files go
            self._csv_out.unlink(missing_ok=True)
            self._meta_out.unlink(missing_ok=True)
            self._lock.release()
            return
        self.meta["ended"] = _now()
        self.meta["finished"] = bool(finished)
        self.meta["rows"] = self.rows
        try:
            self._write_meta()
        finally:
            self._lock.release()

    def _write_meta(self) -> None:
        _replace_text(self._meta_out, json.dumps(self.meta, indent=2, default=str))


def _writer() -> dict:
    """Who writes the export: host, PID and the process's start time (a reused PID is not mistaken for it)."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "start": process_start(os.getpid())}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def export_targets(export: Path, rank: int | None = None) -> list[Path]:
    """Every file `--export` writes: the CSV, its sidecar and its checkpoint (a file of the user's at that name is
    replaced or removed by the run, so it counts as part of the export), and under torchrun this rank's three."""
    out = [export, sidecar_path(export), checkpoint_path(export)]
    if rank is not None:
        mine = rank_path(export, rank)
        out += [mine, sidecar_path(mine), checkpoint_path(mine)]
    return out


def check_targets(export: Path, overwrite: bool, rank: int | None = None, inputs: tuple = ()) -> None:
    """Refuse (ExportError, one sentence) an export that cannot be written or would replace a run unasked.

    Runs before any engine work and without torch: every target passes files.check_output (a file name in a
    folder that takes new files, no input of the run: `inputs` are the scenario and data paths); a target that
    exists must be a plain, writable file, and is replaced only with `overwrite`; no other run may be writing it.
    """
    from ibtui.errors import ExportError
    from ibtui.files import check_output, locked, printable

    export = check_output(Path(export), "--export", inputs=inputs)  # before any name is derived from it
    existing = []
    for target in export_targets(export, rank):
        check_output(target, f"--export {printable(export)}:" if target != export else "--export", inputs=inputs)
        if not (target.exists() or target.is_symlink()):
            continue
        if not target.is_file():
            raise ExportError(f"--export {printable(export)}: {printable(target)} is not a plain file; pick another "
                              f"path.")
        if overwrite and not os.access(target, os.W_OK):
            raise ExportError(f"--export {printable(export)}: {printable(target)} is read-only, so --overwrite will "
                              f"not replace it; pick another path or make it writable.")
        existing.append(target)
    if locked(export):
        raise ExportError(f"--export {printable(export)}: another ibtui is writing it right now; wait for that run to "
                          f"end or pick another path.")
    if existing and not overwrite:
        names = " and ".join(printable(p) for p in existing[:2]) + (f" (+{len(existing) - 2} more)" if len(existing) > 2 else "")
        raise ExportError(f"--export {printable(export)}: {names} already exist{'s' if len(existing) == 1 else ''} (an "
                          f"earlier run); pass --overwrite to replace {'it' if len(existing) == 1 else 'them'} once the "
                          f"new run has its first snapshot, or pick another path.")
    try:
        fd, probe = create_temp(export, ".check")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ExportError(f"--export {printable(export)}: cannot write in the folder {printable(export.parent)} "
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
            mean = seed_mean(torch.tensor([float(r["value"]) for r in per_seed], dtype=torch.float32), row["quantity"])
            out.append([*(row[f] for f in FIELDS[:-1]), format_value(mean)])
        else:  # a run-wide record (noise level), identical on every rank
            out.append([row[f] for f in FIELDS])
    for key, rest in seeds_of.items():  # records without a mean row (a diverged seed's marker)
        out.extend([r[f] for f in FIELDS] for r in rest)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(FIELDS)
    w.writerows(out)
    atomic_write(export, buf.getvalue())
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
