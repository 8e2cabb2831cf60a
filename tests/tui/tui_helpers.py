"""Helpers shared by tests/tui (imported by name; not a test file): polling waits (no fixed
sleeps), a recording sink and a plain-text dump of the whole screen."""
from __future__ import annotations

import io
import time

from rich.console import Console

from ibtui.records import Record, RunInfo, Sink


async def wait_for(pilot, cond, timeout: float = 15.0, what: str = "condition"):
    """Let the app run until cond() is true; fail with `what` after `timeout` seconds."""
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await pilot.pause(0.05)


def screen_text(app) -> str:
    """The screen as plain text, one line a row (what a terminal shows, colours dropped)."""
    w, h = app.size
    console = Console(width=w, height=h, file=io.StringIO(), record=True, color_system=None, legacy_windows=False)
    # Private in Textual 8.2.8 (pinned <9): the same call App.export_screenshot makes.
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()


class RecordingSink(Sink):
    """A CSV-like sink that keeps what it got: start infos, emitted records, close(finished) calls."""

    def __init__(self):
        self.infos: list[RunInfo] = []
        self.records: list[Record] = []
        self.closed: list[bool] = []
        self.emits = 0

    def start(self, info: RunInfo) -> None:
        self.infos.append(info)

    def emit(self, records: list[Record]) -> None:
        assert not self.closed, "emit after close"
        self.records.extend(records)
        self.emits += 1

    def close(self, finished: bool) -> None:
        self.closed.append(finished)


def same_records(a: list[Record], b: list[Record]) -> bool:
    """Equal record lists, NaN equal to NaN (the engine emits NaN where a value does not exist yet)."""
    def key(r: Record):
        return (r.run, r.sweep, r.seed, r.epoch, r.step, r.layer, r.quantity, r.estimator, repr(r.value))

    return [key(r) for r in a] == [key(r) for r in b]
