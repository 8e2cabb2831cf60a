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

from ibtui.files import printable
from ibtui.records import epoch_text
from ibtui.sinks.progress import duration, plural, rate_text
from ibtui.tui.panes.base import fit, shown_estimator
from ibtui.tui.state import StateView, ViewState


@dataclass(frozen=True)
class RunFlags:
    """App-side facts the status line shows besides the state view."""

    paused: bool = False
    stopping: bool = False
    noise_requested: float | None = None  # β asked for with `n` and not applied yet
    source: str = ""  # "view run.csv" in replay mode, "" live
    stalled: str = ""  # replay: "not growing since HH:MM: the run may have been killed" (CsvReplay.stalled)
    runs: tuple[str, ...] = ()  # comparing runs: their names (the view's sweep is the bright one)
    name: str = ""  # the scenario's name, known before the engine's first report (the first frame shows it)


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
    if view.stage:
        return "STARTING"
    return "FOLLOWING" if flags.source else "RUNNING"


def status_lines(view: StateView, vs: ViewState, flags: RunFlags, width: int = 10_000) -> tuple[str, str]:
    """The two status lines, each fitted to `width` columns (items dropped from the right)."""
    info = view.info
    name = printable(info.run if info is not None else (flags.name or "starting"))  # escapes shown, not obeyed
    device = info.device if info is not None else ""
    seeds = len(view.seeds())
    total = view.total
    p = view.progress
    epoch = f"epoch {epoch_text(view.epoch)}/{total}" if total else f"epoch {epoch_text(view.epoch)}"
    n_snaps = len(info.snapshot_epochs) if info is not None and info.snapshot_epochs else (
        p.snapshots_total if p is not None else 0)
    snaps = f"snapshot {view.snapshots}/{n_snaps}" if n_snaps else (
        plural(view.snapshots, "snapshot") if view.snapshots else "")
    live = view.sweep == view.live_sweep
    if flags.source or not live or p is None:  # a replay, a finished sweep point or not started: no speed, no ETA
        speed = []
    else:
        eta = "–"
        if view.finished is None and p is not None:
            eta = duration(view.eta_s) if math.isfinite(view.eta_s) else "…"
        speed = [f"ETA {eta}" if view.finished is None else "", rate_text(p) if p is not None else ""]
    sweep = ""
    if flags.runs:
        k = flags.runs.index(view.sweep) + 1 if view.sweep in flags.runs else "?"
        sweep = f"bright {k}/{len(flags.runs)}"
    elif view.sweep:
        pts = (info.sweep_points if info is not None and info.sweep_points else view.sweeps) or (view.sweep,)
        k = pts.index(view.sweep) + 1 if view.sweep in pts else "?"
        sweep = f"sweep {view.sweep.rsplit('.', 1)[-1]} {k}/{len(pts)}{'' if live else ' (done)'}"
    # fitted from the right: the device, then the speed and the seed count go first when the line is short
    first = fit([printable(flags.source), name, printable(sweep), epoch, *speed[:1], snaps, plural(seeds, "seed") if seeds else "", *speed[1:],
                 device], width)
    beta = "β=–" if view.beta is None else f"β={view.beta:g}"
    if flags.noise_requested is not None and flags.noise_requested != view.beta:
        beta += f" → {flags.noise_requested:g} at next epoch"
    est = shown_estimator(view, vs) or "–"
    layers = "all layers" if vs.layer is None else f"layer {vs.layer}"
    diverged = f"{len({s for s, _ in view.diverged})} seed(s) diverged" if view.diverged else ""
    state = run_state(view, flags)
    if not live and state in ("RUNNING", "FOLLOWING", "NOT GROWING"):
        state = "DONE"
    behind = ""  # the measuring worker more than a snapshot behind training (ibtui.engine.overlap)
    if live and view.finished is None and not flags.source and p is not None and p.measuring >= 2:
        behind = f"measuring snapshot {view.snapshots + 1}, training at epoch {epoch_text(view.epoch)}"
    second = fit([state, view.stage, view.error or flags.stalled, f"noise {beta}", f"estimator {est}", diverged,
                  behind, layers, "each seed" if vs.per_seed else "mean"], width)
    return first, second


class StatusLine(Static):
    HELP = ("Status line: scenario, number of seeds, epoch / total, snapshots measured / scheduled, training "
            "speed in seed-epochs per second (seeds × epochs per second of training time), ETA (epochs left at "
            "the measured time an epoch + snapshots left at the measured time a snapshot), device; the run state (RUNNING, PAUSED, "
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
        state = second.split(" · ")[0]
        styled = Text(first + "\n")
        style = {"PAUSED": "reverse bold", "FAILED": "reverse bold red", "FINISHED": "bold green",
                 "STOPPED": "bold yellow", "STOPPING…": "bold yellow"}.get(state, "bold")
        styled.append(state, style=style)
        styled.append(second[len(state):])
        self.update(styled)
