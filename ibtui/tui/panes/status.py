"""The status line: scenario, device, seeds, epoch / total, seed-epochs/s, ETA, noise, estimator, state.

Two lines of text, rebuilt on every poll where anything changed (cheap: one Static.update). The run
state is a word in capitals (RUNNING, PAUSED, STOPPING…, FINISHED, STOPPED, FAILED, VIEWING), so it
reads without colour.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Static

from ibtui.tui.panes.base import fit
from ibtui.tui.panes.info_plane import shown_estimator
from ibtui.tui.state import StateView, ViewState


@dataclass(frozen=True)
class RunFlags:
    """App-side facts the status line shows besides the state view."""

    paused: bool = False
    stopping: bool = False
    noise_requested: float | None = None  # β asked for with `n` and not applied yet
    source: str = ""  # "view run.csv" in replay mode, "" live
    stalled: str = ""  # replay: "not growing since HH:MM: the run may have been killed" (CsvReplay.stalled)


def duration(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "–"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def run_state(view: StateView, flags: RunFlags) -> str:
    if view.error:
        return "FAILED"
    if view.finished is True:
        return "FINISHED"
    if view.finished is False:
        return "STOPPED"
    if flags.stopping:
        return "STOPPING…"
    if flags.paused:
        return "PAUSED"
    if flags.stalled:
        return "NOT GROWING"
    return "FOLLOWING" if flags.source else "RUNNING"


def status_lines(view: StateView, vs: ViewState, flags: RunFlags, width: int = 10_000) -> tuple[str, str]:
    """The two status lines, each fitted to `width` columns (items dropped from the right)."""
    info = view.info
    name = info.run if info is not None else "(waiting for the run)"
    device = info.device if info is not None else ""
    seeds = len(view.seeds())
    total = view.total
    epoch = f"epoch {view.epoch}/{total}" if total else f"epoch {view.epoch}"
    rate = f"{view.rate:,.0f} seed-epochs/s" if math.isfinite(view.rate) else "– seed-epochs/s"
    eta = "–"
    if total and math.isfinite(view.rate) and view.rate > 0 and seeds and view.finished is None:
        eta = duration((total - view.epoch) * seeds / view.rate)
    first = fit([flags.source, name, f"{seeds} seeds", epoch, rate, f"ETA {eta}", device], width)
    beta = "β=–" if view.beta is None else f"β={view.beta:g}"
    if flags.noise_requested is not None and flags.noise_requested != view.beta:
        beta += f" → {flags.noise_requested:g} at next epoch"
    est = shown_estimator(view, vs) or "–"
    layers = "all layers" if vs.layer is None else f"layer {vs.layer}"
    diverged = f"{len({s for s, _ in view.diverged})} seed(s) diverged" if view.diverged else ""
    sweep = f"sweep {view.sweep}" if view.sweep else ""
    if view.other_sweeps:
        sweep += f" (+{len(view.other_sweeps)} other sweep points not shown)"
    second = fit([run_state(view, flags), view.error or flags.stalled, f"noise {beta}", f"estimator {est}", diverged, sweep,
                  layers, "each seed" if vs.per_seed else "mean"], width)
    return first, second


class StatusLine(Static):
    HELP = ("Status line: scenario, device, number of seeds, epoch / total, training speed in seed-epochs per "
            "second (seeds × epochs per second of training time), ETA, the run state (RUNNING, PAUSED, "
            "FINISHED, STOPPED, FAILED; FOLLOWING when viewing a CSV), the noise level β (→ a requested level "
            "not applied yet), the estimator shown, the layers shown and mean / each seed.")

    def __init__(self, **kw):
        super().__init__("", **kw)
        self.text = ""

    def show(self, view: StateView, vs: ViewState, flags: RunFlags) -> None:
        first, second = status_lines(view, vs, flags, max(self.size.width - 2, 20) if self.size.width else 10_000)
        text = first + "\n" + second
        if text == self.text:
            return
        self.text = text
        state = run_state(view, flags)
        styled = Text(first + "\n")
        style = {"PAUSED": "reverse bold", "FAILED": "reverse bold red", "FINISHED": "bold green",
                 "STOPPED": "bold yellow", "STOPPING…": "bold yellow"}.get(state, "bold")
        styled.append(state, style=style)
        styled.append(second[len(state):])
        self.update(styled)
