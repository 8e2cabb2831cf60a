"""Headless progress on stderr with rich: epoch, seeds, seed-epochs/s and ETA (off with --quiet)."""
from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ibtui.records import Record, RunInfo, Sink


class ProgressSink(Sink):
    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.bar = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("epochs"),
            TextColumn("{task.fields[seeds]} seeds · {task.fields[rate]} seed-epochs/s · β={task.fields[beta]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=self.console, transient=False)
        self.task = None
        self._last = 0.0

    def start(self, info: RunInfo) -> None:
        for note in info.notes:
            self.console.print(f"[yellow]note:[/] {note}")
        self.console.print(f"{info.run}: {len(info.seeds)} seeds on {info.device}; MI on {info.n_points} points "
                           f"({info.mi_points}); estimators: "
                           + "; ".join(f"{k} = {v}" for k, v in info.estimator_settings.items()))
        self.bar.start()
        self.task = self.bar.add_task(info.run, total=info.epochs, seeds=len(info.seeds), rate="–", beta="0")

    def progress(self, epoch: int, total: int, rate: float, beta: float) -> None:
        now = time.monotonic()
        if now - self._last < 0.1 and epoch < total:  # the bar redraws at 10 Hz at most
            return
        self._last = now
        self.bar.update(self.task, completed=epoch, rate=f"{rate:,.0f}", beta=f"{beta:g}")

    def emit(self, records: list[Record]) -> None:
        for r in records:
            if r.quantity == "diverged":
                self.console.print(f"[red]seed {r.seed} diverged at epoch {r.epoch} (loss not finite); it stops there.")

    def close(self, finished: bool) -> None:
        if self.task is not None:
            self.bar.stop()
