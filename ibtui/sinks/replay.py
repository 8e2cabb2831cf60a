"""Replay an exported run (`ibtui view run.csv`): read the CSV, following it while it is still written.

`CsvReplay` looks like the engine to the app (`info`, `run(sink, controls) -> bool`), so a recorded
run fills the same panes as a live one. It reads only complete lines (the CSV sink writes one
snapshot per `write` and flushes, sinks/csv.py), parses them with the export reader's `column_index` and
`parse_row` (sinks/runs.py: one parser for the replay, the figures and `ibtui.load`), emits them to the
sinks, and keeps polling the file until the sidecar `run.meta.json` says the run ended, or `controls.stop` is
set. `controls.paused` pauses the following. The run's description comes from the sidecar (`run_info`) when present, else
it is inferred from the records (layers, estimators and seeds seen; no N, so no log2 N ceiling).
"""
from __future__ import annotations

import math
import os
import socket
import time
from datetime import datetime
from pathlib import Path

from ibtui.controls import Controls
from ibtui.records import FIELDS, Progress, Record, RunInfo, Sink
from ibtui.quantities import MI_TY, MI_XT, NOISE_BETA
from ibtui.sinks.runs import (  # the one export reader
    column_index, csv_rows, load_runs, parse_row, read_meta, run_info_fits,
)

CHUNK = 4 << 20  # bytes read per step: a big file fills the panes progressively


def info_from_meta(meta: dict | None) -> RunInfo | None:
    if not meta or not isinstance(meta.get("run_info"), dict):
        return None
    d = dict(meta["run_info"])
    fields = RunInfo.__dataclass_fields__
    if not run_info_fits(d):
        return None
    try:
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in fields}
        return RunInfo(**kw)
    except TypeError:
        return None


CHECK_BYTES = 1 << 16  # `check_export` reads this much: the header and the first rows
CHECK_ROWS = 50
STALL_S = 180.0  # no growth and no heartbeat for this long (or the writer's process gone): the run may be dead


def check_export(path: str | Path) -> None:
    """ExportError (one sentence) unless `path` starts like an ibtui export: a header naming the record columns,
    then rows that parse as records. Reads only the first CHECK_BYTES; a file still being written passes."""
    from ibtui.errors import ExportError

    from ibtui.files import check_input

    path = Path(path)
    hint = "give the CSV written by `ibtui SCENARIO --export FILE`"
    check_input(path, "export", ExportError)  # a folder, FIFO or device: refused without opening it
    try:
        with open(path, "rb") as f:
            head = f.read(CHECK_BYTES)
    except OSError as exc:
        raise ExportError(f"{path}: cannot read it ({exc.strerror or exc}); {hint}.") from None
    if not head:
        raise ExportError(f"{path} is empty, so it is not an ibtui export (even a new run's file has a header); {hint}.")
    complete = head if len(head) < CHECK_BYTES else head[: head.rfind(b"\n") + 1]
    if b"\x00" in complete:
        raise ExportError(f"{path} is a binary file, not an ibtui export; {hint}.")
    try:
        text = complete.decode("utf-8")
    except UnicodeDecodeError:
        raise ExportError(f"{path} is not UTF-8 text, so it is not an ibtui export; {hint}.") from None
    lines = text.split("\n")  # one record a line (U+2028 in a run's name is not a line end)
    body = text if text.endswith("\n") or len(lines) == 1 else text[:text.rfind("\n") + 1]
    rows = []
    for _, row in csv_rows(body, path):  # a stray quote: an ExportError naming its line
        rows.append(row)
        if len(rows) > CHECK_ROWS:
            break
    idx = column_index(rows[0]) if rows else None
    if idx is None:
        found = ",".join(rows[0])[:80] if rows else ""
        raise ExportError(f"{path} does not start with the header of an ibtui export ({','.join(FIELDS)}) but with "
                          f"{found!r}; {hint}.")
    for i, row in enumerate(rows[1:], start=2):
        if parse_row(row, idx) is None:
            raise ExportError(f"{path}: line {i} is not an ibtui record ({','.join(row)[:60]!r}); {hint}.")


def writer_alive(meta: dict | None) -> bool | None:
    """Whether the writer process the sidecar names still exists; None if it ran on another machine (or an
    older sidecar names none), so only the file's growth can tell."""
    w = (meta or {}).get("writer")
    if not isinstance(w, dict) or w.get("host") != socket.gethostname() or not isinstance(w.get("pid"), int):
        return None
    try:
        os.kill(w["pid"], 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        pass
    from ibtui.files import process_start

    start = process_start(w["pid"])  # the PID may have been reused by another process since
    return not (isinstance(w.get("start"), str) and start is not None and start != w["start"])


def _stamp(iso: object) -> float | None:
    try:
        return datetime.fromisoformat(str(iso)).timestamp()
    except ValueError:
        return None


def infer_info(records: list[Record], path: Path, meta: dict | None) -> RunInfo:
    """A RunInfo from what the records show (used when the sidecar has none)."""
    layers = sorted({r.layer for r in records if r.quantity in (MI_XT, MI_TY)}, key=lambda s: int(s) if s.isdigit() else 0)
    ests = sorted({r.estimator for r in records if r.quantity in (MI_XT, MI_TY) and r.estimator})
    seeds = sorted({r.seed for r in records if isinstance(r.seed, int)})
    epochs = 0
    sc = (meta or {}).get("scenario") or {}
    if isinstance(sc.get("run"), dict) and isinstance(sc["run"].get("epochs"), int):
        epochs = sc["run"]["epochs"]
    betas = sorted({r.value for r in records if r.quantity == NOISE_BETA}) or [0.0]
    return RunInfo(run=records[0].run if records else path.stem, scenario_path=str(path),
                   device=str((meta or {}).get("device", "recorded")), seeds=tuple(seeds), epochs=epochs,
                   layers=tuple(layers), layer_widths=(), n_points=0, mi_points="?", estimators=tuple(ests),
                   estimator_settings={}, noise_levels=tuple(betas),
                   notes=("no run description beside the CSV: N, and so the log2 N ceiling, is unknown",))


class CsvReplay:
    """Reads `path` and feeds the records to sinks, following the file until its run has ended."""

    def __init__(self, path: str | Path, poll_s: float = 0.25, follow: bool = True):
        self.path = Path(path)
        self.poll_s = poll_s
        self.follow = follow
        self.meta = read_meta(self.path)
        self.info: RunInfo | None = info_from_meta(self.meta)
        self.epoch = 0
        self.rows = 0
        self._offset = 0
        self._rest = b""
        self._index: dict[str, int] | None = None  # column positions, from the header
        self.stall_s = STALL_S
        self.stalled = ""  # "not growing since HH:MM: the run may have been killed" (the status line shows it)

    def check_stalled(self, now: float | None = None) -> str:
        """Set and return `stalled`: the run has not ended, yet its writer is gone (its process no longer exists,
        or, written on another machine, neither the file nor the sidecar's heartbeat moved for `stall_s`)."""
        now = time.time() if now is None else now
        try:
            grown = self.path.stat().st_mtime
        except OSError:
            return self.stalled
        alive = writer_alive(self.meta)
        if alive is None:  # another machine: silent for stall_s (no growth, no heartbeat in the sidecar)
            alive = now - max(grown, _stamp((self.meta or {}).get("alive")) or 0.0) <= self.stall_s
        if not alive:
            since = datetime.fromtimestamp(grown).strftime("%H:%M")
            self.stalled = f"not growing since {since}: the run may have been killed"
        else:
            self.stalled = ""
        return self.stalled

    def ended(self) -> bool | None:
        """None while the writer is still at work (or unknown), else whether the run finished."""
        meta = read_meta(self.path)
        if meta is not None:
            self.meta = meta
        if self.meta is None or not self.meta.get("ended"):
            return None
        return bool(self.meta.get("finished"))

    def read_new(self) -> list[Record]:
        """Records from the complete lines appended since the last call."""
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            data = f.read(CHUNK)
        if not data:
            return []
        self._offset += len(data)
        data = self._rest + data
        cut = data.rfind(b"\n")
        if cut < 0:
            self._rest = data
            return []
        self._rest = data[cut + 1:]
        text = data[:cut].decode("utf-8", errors="replace")
        out = []
        for _, row in csv_rows(text, self.path, skip_bad=True):  # a line with a stray quote: that line skipped
            if self._index is None:
                self._index = column_index(row)
                if self._index is not None:
                    continue  # the header
                self._index = {name: i for i, name in enumerate(FIELDS)}  # no header: today's column order
            rec = parse_row(row, self._index)
            if rec is not None:
                out.append(rec)
        self.rows += len(out)
        return out

    def run(self, sink: Sink, controls: Controls | None = None) -> bool:
        controls = controls or Controls()
        started = False
        beta = math.nan
        seen: set[int] = set()  # snapshot epochs read so far
        if self.info is None:  # the writer may have described the run since this object was made
            self.meta = read_meta(self.path) or self.meta
            self.info = info_from_meta(self.meta)
        total = self.info.epochs if self.info is not None else 0
        if self.info is not None:
            sink.start(self.info)
            started = True
        while not controls.stop.is_set():
            if controls.paused.is_set():
                time.sleep(0.05)
                continue
            ended = self.ended()  # read before the data: an end seen here means the data below is complete
            records = self.read_new()
            if records:
                self.stalled = ""
                if not started:
                    self.info = info_from_meta(self.meta) or infer_info(records, self.path, self.meta)
                    total = self.info.epochs
                    sink.start(self.info)
                    started = True
                for r in records:
                    if r.quantity == NOISE_BETA:
                        beta = r.value
                self.epoch = max(self.epoch, max(r.epoch for r in records))
                seen.update(r.epoch for r in records if r.quantity != NOISE_BETA)
                sink.emit(records)
                n_snaps = len(self.info.snapshot_epochs) if self.info is not None else 0
                sink.progress(Progress(self.epoch, total or self.epoch, len(self.info.seeds) if self.info else 0,
                                       beta, len(seen), max(n_snaps, len(seen)) if n_snaps else 0))
                continue  # more may be waiting: read on before sleeping
            if ended is not None:
                return ended
            if not self.follow:
                return False
            self.check_stalled()
            controls.stop.wait(self.poll_s)
        return False


class CompareReplay:
    """Several finished (or partial) exports for the app's comparison view (`ibtui view a.csv b.csv …`).

    Each run is read once with the export reader and fed to the sink as one point of a sweep labelled by the
    run's name (`run_labels`), so the state keeps every run's series apart; the panes draw them together. A sweep
    export is compared at its first sweep value. Looks like the engine to the app, like CsvReplay."""

    def __init__(self, paths: list[str | Path]):
        self.paths = [Path(p) for p in paths]
        self.runs, self.run_labels = load_runs(self.paths)
        self.info: RunInfo | None = None
        self.epoch = 0
        self.stalled = ""
        self.rows = 0

    def run(self, sink: Sink, controls: Controls | None = None) -> bool:
        from dataclasses import replace

        controls = controls or Controls()
        for run, label in zip(self.runs, self.run_labels):
            if controls.stop.is_set():
                return False
            sweep = run.sweeps[0] if run.sweeps else ""
            records = run.records(sweep, as_sweep=label)
            info = info_from_meta(run.meta) or infer_info(records, run.path, run.meta)
            point = next((p for p in run.meta.get("sweep_points") or [] if isinstance(p, dict)
                          and p.get("sweep") == sweep), None)
            if point is not None:  # a sweep's own point description (its layers, settings)
                info = info_from_meta({"run_info": point}) or info
            info = replace(info, run=label, sweep=label, sweep_points=())
            self.info = self.info or info
            sink.start(info)
            sink.emit(records)
            self.rows += len(records)
            self.epoch = max(self.epoch, max((r.epoch for r in records), default=0))
        return True
