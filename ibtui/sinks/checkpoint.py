"""The checkpoint beside an export, so that `ibtui resume RUN.csv` continues a killed run.

A sink after the CSV sink: `progress` comes after each trained epoch, once that epoch's records are on
disk, so a checkpoint taken there matches the CSV's first `size` bytes exactly (while a snapshot is still
measured on the worker thread, `at_boundary` is false and the sink asks the engine to emit it first). It is written at most every
`run.checkpoint_every` seconds and at an orderly stop (Ctrl-C, SIGTERM, SIGHUP and `q` stop at an epoch
boundary); a run stopped mid-epoch (out of memory, a second Ctrl-C) keeps its last periodic checkpoint. A
finished run removes it: there is nothing left to resume.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone

from ibtui.engine import checkpoint
from ibtui.records import Progress, Sink
from ibtui.sinks.csv import CsvSink, checkpoint_path


def version() -> str:
    from ibtui.version import __version__

    return __version__


class CheckpointSink(Sink):
    def __init__(self, runner, csv_sink: CsvSink, every_s: float, scenario_toml: str):
        self.runner = runner  # an Engine or SweepRunner: state_dict(), at_boundary, epoch
        self.csv = csv_sink
        self.every_s = float(every_s)
        self.scenario_toml = scenario_toml
        self.path = checkpoint_path(csv_sink.path)
        self.saved_epoch: int | None = None
        self._last = time.monotonic()

    def progress(self, p: Progress) -> None:
        if self.every_s > 0 and time.monotonic() - self._last >= self.every_s:
            if self.runner.at_boundary:
                self.save()
            else:  # a snapshot is still being measured: the engine emits it at the next boundary
                self.runner.request_settle()

    def close(self, finished: bool) -> None:
        if finished:
            self.path.unlink(missing_ok=True)
        elif self.every_s > 0 and self.runner.at_boundary and self.csv.replaced:
            self.save()

    def save(self) -> None:
        """Write the checkpoint now (atomically; the previous one stays until the new one is complete)."""
        state = self.runner.state_dict()
        checkpoint.save(self.path, {
            "format": checkpoint.FORMAT, "ibtui": version(), "scenario_toml": self.scenario_toml,
            "run_id": self.csv.meta.get("run_id"),
            "csv_bytes": self.csv.size, "rows": self.csv.rows, "last_epoch": self.csv.last_epoch,
            "epoch": self.runner.epoch, "saved": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "runner": state})
        self.saved_epoch = self.runner.epoch
        self._last = time.monotonic()
