"""Headless progress on stderr: epoch, snapshots, seed-epochs/s and ETA (off with --quiet).

On a terminal, a rich progress bar redrawn in place. Anywhere else (`2> run.log`, a pipe, a batch job), one
plain line every `every` seconds, written whole and flushed, so a log file shows the run going and no line
is ever cut. The run's description (seeds, device, MI points, estimators, notes) is printed once; a sweep's
later points get one line each. The ETA comes from the schedule (records.Progress.eta_s): training epochs
left at the measured time an epoch plus snapshots left at the measured time a snapshot (medians of the
recent ones: records.EtaEstimator).
"""
from __future__ import annotations

import math
import time

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, ProgressColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from ibtui.files import printable
from ibtui.quantities import SEED_DIVERGED
from ibtui.records import EtaEstimator, Progress, Record, RunInfo, Sink, epoch_text


def duration(seconds: float) -> str:
    """'1h05m', '4m07s', '12s'; '–' when unknown."""
    if not math.isfinite(seconds) or seconds < 0:
        return "–"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def rate_text(p: Progress | None) -> str:
    """'1,234 seed-epochs/s', or 'measuring speed…' before the first timed epoch."""
    r = p.seed_epochs_per_s if p is not None else math.nan
    return f"{r:,.0f} seed-epochs/s" if math.isfinite(r) and r >= 1 else (
        f"{r:.2g} seed-epochs/s" if math.isfinite(r) and r > 0 else "measuring speed…")


def describe(info: RunInfo) -> str:
    """One line: what the run is (the start-up description)."""
    ests = "; ".join(f"{k} = {v}" for k, v in info.estimator_settings.items())
    parts = [f"{info.run}: {plural(len(info.seeds), 'seed')} on {info.device}", f"{info.epochs} epochs",
             f"{plural(len(info.snapshot_epochs), 'snapshot')}" if info.snapshot_epochs else "",
             f"MI on {info.n_points} points ({info.mi_points})", f"estimators: {ests}" if ests else ""]
    if info.sweep_points:
        parts.append(f"sweep of {len(info.sweep_points)} points: {', '.join(info.sweep_points)}")
    return "; ".join(p for p in parts if p)


def progress_line(p: Progress, info: RunInfo | None, elapsed: float, eta: float | None = None) -> str:
    """The plain log line: never longer than it needs, never cut."""
    where = f"[{info.sweep}] " if info is not None and info.sweep else ""
    snaps = f"snapshots {p.snapshots_done}/{p.snapshots_total}" if p.snapshots_total else ""
    items = [f"{where}epoch {p.epoch}/{p.total}", snaps, rate_text(p), f"elapsed {duration(elapsed)}",
             f"ETA {duration(p.eta_s if eta is None else eta)}"]
    if p.noise_beta and math.isfinite(p.noise_beta):
        items.append(f"β={p.noise_beta:g}")
    return "ibtui: " + " · ".join(i for i in items if i)


class _EtaColumn(ProgressColumn):
    def render(self, task) -> Text:
        return Text(f"ETA {task.fields.get('eta', '–')}")


class ProgressSink(Sink):
    def __init__(self, console: Console | None = None, every: float = 15.0):
        self.console = console or Console(stderr=True)
        self.live = self.console.is_terminal
        self.every = every
        self.info: RunInfo | None = None
        self.bar: Bar | None = None
        self.task = None
        self._last = 0.0
        self._last_line = -math.inf
        self._started = time.monotonic()
        self._described = False
        self._p: Progress | None = None
        self.eta = EtaEstimator()

    def _say(self, text: str, style: str = "") -> None:
        text = printable(text)  # a run name or note from a scenario or an export: its escapes shown, never obeyed
        if self.live:
            self.console.print(text, style=style or None, markup=False, highlight=False)
        else:  # a log file: whole lines, flushed, never wrapped or cut by rich
            f = self.console.file
            f.write(text + "\n")
            f.flush()

    def start(self, info: RunInfo) -> None:
        self.info = info
        if not self._described:  # once per command, not once per sweep point
            self._described = True
            for note in info.notes:
                self._say(f"note: {note}", "yellow")
            self._say(describe(info))
        elif info.sweep:
            k = info.sweep_points.index(info.sweep) + 1 if info.sweep in info.sweep_points else "?"
            self._say(f"sweep point {k}/{len(info.sweep_points) or '?'}: {info.sweep}")
        self._started = time.monotonic()
        self._last_line = time.monotonic()
        if self.live:
            if self.bar is None:
                self.bar = Bar(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                               TextColumn("epochs · {task.fields[snaps]} · {task.fields[rate]}"),
                               TimeElapsedColumn(), _EtaColumn(), console=self.console, transient=False)
                self.bar.start()
            if self.task is not None:
                self.bar.update(self.task, visible=True)
            self.task = self.bar.add_task(escape(printable(info.sweep or info.run)), total=info.epochs, snaps="", rate="", eta="–")

    def progress(self, p: Progress) -> None:
        self._p = p
        self.eta.update(p)
        now = time.monotonic()
        if self.live:
            if now - self._last < 0.1 and p.epoch < p.total:  # the bar redraws at 10 Hz at most
                return
            self._last = now
            snaps = f"snapshots {p.snapshots_done}/{p.snapshots_total}" if p.snapshots_total else ""
            if self.bar is not None and self.task is not None:
                self.bar.update(self.task, completed=p.epoch, snaps=snaps, rate=rate_text(p),
                                eta=duration(self.eta.eta_s()))
        elif now - self._last_line >= self.every and p.epoch < p.total:  # the last line comes with close()
            self._last_line = now
            self._say(progress_line(p, self.info, now - self._started, self.eta.eta_s()))

    def emit(self, records: list[Record]) -> None:
        for r in records:
            if r.quantity == SEED_DIVERGED:
                self._say(f"seed {r.seed} diverged at epoch {epoch_text(r.epoch)} (loss not finite); it stops there.", "red")

    def close(self, finished: bool) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
        if not self.live and self._p is not None:
            self._say(progress_line(self._p, self.info, time.monotonic() - self._started)
                      + (" · finished" if finished else " · stopped"))
