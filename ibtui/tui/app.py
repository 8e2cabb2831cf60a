"""The live terminal app: the engine in a thread worker, the panes drawn from a polled state.

Pattern (tui.md §2): the engine runs in `@work(thread=True)` and writes only to `TuiState` (a sink,
lock-protected, versioned) and the other sinks (the CSV export); keys write only to `Controls`. The
app polls the state at `fps` (default 3 Hz) and redraws visible panes only when the version changed,
so a paused or finished run costs nearly nothing and the engine never waits on the UI. Quitting sets
`controls.stop`, waits for the thread to return (never `Worker.cancel()`, which does not stop a
thread), closes the sinks (the CSV is flushed, its sidecar says whether the run finished) and exits 0.

Layout: a two-line status, then either every pane in a grid (terminals of 120×36 and more) or one
page at a time (keys 1-4, tab) on smaller ones; below 60×20 one sentence replaces the layout.

`run_app(engine, sinks)` and `view_app(csv_path)` are what the CLI calls; `python -m ibtui.tui.app`
runs the app on the fake engine (a demo without training).
"""
from __future__ import annotations

import contextlib
import sys
import traceback
import warnings
from dataclasses import replace
from pathlib import Path

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.widgets import Footer, Static
from textual.worker import WorkerCancelled, WorkerFailed

from ibtui.controls import Controls
from ibtui.tui.help import HelpScreen, help_text
from ibtui.tui.panes.base import Pane
from ibtui.tui.panes.bound import BoundPane
from ibtui.tui.panes.clustering import ClusteringPane
from ibtui.tui.panes.dynamics import DynamicsPane
from ibtui.tui.panes.info_plane import InfoPlanePane
from ibtui.tui.panes.loss import LossPane
from ibtui.tui.panes.status import RunFlags, StatusLine
from ibtui.tui.state import DYNAMICS_QUANTITIES, StateView, TuiState, ViewState
from ibtui.records import Fanout

MIN_SIZE = (60, 20)  # below this, one sentence instead of the layout
WIDE_SIZE = (120, 36)  # from this up, every pane at once
PAGES = {1: "plane", 2: "dynamics", 3: "clusters", 4: "loss"}


class IbtuiApp(App):
    """The app. `source` is the engine (or a CsvReplay): `info`, `run(sinks, controls) -> bool`."""

    CSS_PATH = "ibtui.tcss"
    TITLE = "ibtui"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        Binding("n", "noise", "Noise", tooltip="cycle the noise level β (applied at the next epoch, marked *)"),
        Binding("e", "estimator", "Estimator", tooltip="cycle the MI estimator shown (all are computed)"),
        Binding("space", "pause", "Pause", tooltip="pause / resume training (or following a CSV)"),
        Binding("l", "layers", "Layers", tooltip="all layers, then one at a time"),
        Binding("s", "seeds", "Seeds", tooltip="mean over seeds / mean plus each seed"),
        Binding("question_mark,f1", "help", "Help", key_display="?", tooltip="this screen"),
        Binding("q", "quit", "Quit", tooltip="stop the engine, flush the export, exit (a second q forces)"),
        Binding("ctrl+c", "quit", "", show=False, priority=True),
        Binding("d", "dynamics", "Dynamics quantity", show=False,
                tooltip="cycle the dynamics plot: SNR, gradient mean, std, weight change, weight norm"),
        Binding("tab", "next_page", "Next page", show=False, priority=True, tooltip="small terminals: next page"),
        Binding("1", "page(1)", "Page 1", show=False, tooltip="small terminals: information plane"),
        Binding("2", "page(2)", "Page 2", show=False, tooltip="small terminals: dynamics"),
        Binding("3", "page(3)", "Page 3", show=False, tooltip="small terminals: clustering and Gaussian bound"),
        Binding("4", "page(4)", "Page 4", show=False, tooltip="small terminals: loss and accuracy"),
    ]

    def __init__(self, source, sinks: list | tuple = (), fps: float = 3.0, controls: Controls | None = None,
                 source_label: str = ""):
        super().__init__()
        if fps <= 0:
            raise ValueError("fps must be positive")
        self.source = source
        self.sinks = list(sinks)
        self.fps = fps
        self.controls = controls or Controls()
        self.state = TuiState()
        self.vs = ViewState()
        self.source_label = source_label  # "view run.csv" in replay mode
        self.view: StateView = self.state.view()
        self.engine_worker = None
        self.stopping = False
        self.redraws = 0  # pane redraws done (tests, cost checks)
        self._seen: tuple | None = None
        self._notes_shown = False
        self._warnings_shown = 0
        self._showwarning = warnings.showwarning

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield StatusLine(id="status")
        yield Static("", id="pagebar")
        with Container(id="panes"):
            yield InfoPlanePane(id="plane")
            yield LossPane(id="loss")
            yield DynamicsPane(id="dynamics")
            yield ClusteringPane(id="clustering")
            yield BoundPane(id="bound")
        yield Static("", id="too-small")
        yield Footer()

    def on_mount(self) -> None:
        self._showwarning = warnings.showwarning  # stderr is the screen: warnings become notices
        warnings.showwarning = self._warning
        self.apply_size(self.size.width, self.size.height)
        self.engine_worker = self.run_engine()
        self.set_interval(1 / self.fps, self.poll)

    def on_resize(self, event) -> None:
        self.apply_size(event.size.width, event.size.height)

    def apply_size(self, width: int, height: int) -> None:
        too_small = width < MIN_SIZE[0] or height < MIN_SIZE[1]
        wide = not too_small and width >= WIDE_SIZE[0] and height >= WIDE_SIZE[1]
        self.set_class(too_small, "-too-small")
        self.set_class(wide, "-wide")
        self.set_class(not wide and not too_small, "-compact")
        self.query_one("#too-small", Static).update(
            f"ibtui needs a terminal of at least {MIN_SIZE[0]}×{MIN_SIZE[1]}; this one is {width}×{height}.")
        self.poll(force=True)

    @property
    def layout_mode(self) -> str:
        return "too-small" if self.has_class("-too-small") else ("wide" if self.has_class("-wide") else "compact")

    # ------------------------------------------------------------------ the engine thread
    @work(thread=True, group="engine", exit_on_error=False)
    def run_engine(self) -> bool:
        finished = False
        try:
            finished = bool(self.source.run(Fanout([self.state, *self.sinks]), self.controls))
        except Exception as exc:  # shown in the status line; the app stays open to read it
            self.state.fail(f"engine failed: {type(exc).__name__}: {exc}", traceback.format_exc())
        finally:
            for sink in self.sinks:  # the export first: once the status says FINISHED, the CSV is complete
                try:
                    sink.close(finished)
                except Exception as exc:
                    self.state.fail(f"closing {type(sink).__name__} failed: {exc}")
            self.state.close(finished)
        return finished

    # ------------------------------------------------------------------ polling and drawing
    def flags(self) -> RunFlags:
        requested = None
        idx = self.controls.noise_index
        info = self.view.info
        if idx is not None and info is not None and info.noise_levels:
            requested = info.noise_levels[idx % len(info.noise_levels)]
        return RunFlags(paused=self.controls.paused.is_set(), stopping=self.stopping,
                        noise_requested=requested, source=self.source_label,
                        stalled=getattr(self.source, "stalled", ""))

    def poll(self, force: bool = False) -> None:
        """Timer callback: redraw what changed since the last call (nothing when nothing did)."""
        flags = self.flags()
        panes = list(self.query(Pane))
        seen = (self.state.version, flags, self.vs, self.layout_mode, tuple(p.size.width for p in panes))
        if seen == self._seen and not force:
            return
        self._seen = seen
        self.view = view = self.state.view()
        if not self._notes_shown and view.info is not None:
            self._notes_shown = True
            for note in view.info.notes:
                self.notify(note, title="note", timeout=8, markup=False)
        for message in view.warnings[self._warnings_shown:]:
            self.notify(message, title="warning", severity="warning", timeout=8, markup=False)
        self._warnings_shown = len(view.warnings)
        self.query_one(StatusLine).show(view, self.vs, flags)
        self.query_one("#pagebar", Static).update(self.page_bar())
        if self.layout_mode == "too-small":
            return
        for pane in panes:
            visible = self.layout_mode == "wide" or pane.PAGE == self.vs.page
            pane.set_class(visible, "-current")
            if visible and pane.needs_redraw(view, self.vs):
                pane.redraw(view, self.vs)
                self.redraws += 1

    def page_bar(self) -> str:
        parts = [(f"[reverse] {k} {name} [/]" if k == self.vs.page else f" {k} {name} ") for k, name in PAGES.items()]
        return "".join(parts) + "  [dim]tab: next page · ? help[/]"

    def set_view(self, **changes) -> None:
        self.vs = replace(self.vs, **changes)
        self.poll(force=True)

    # ------------------------------------------------------------------ keys
    def action_noise(self) -> None:
        info = self.view.info
        if self.source_label:
            self.notify("viewing a recorded run: the noise level cannot change", timeout=4)
            return
        if info is None or len(info.noise_levels) < 2:
            levels = ", ".join(f"{b:g}" for b in info.noise_levels) if info is not None else "–"
            self.notify(f"this run has one noise level (β = {levels}); list more in model.noise_levels to cycle",
                        timeout=5)
            return
        levels = list(info.noise_levels)
        current = self.controls.noise_index
        if current is None:
            current = levels.index(self.view.beta) if self.view.beta in levels else 0
        self.controls.request_noise((current + 1) % len(levels))
        self.poll(force=True)

    def action_estimator(self) -> None:
        ests = self.view.estimators()
        if len(ests) < 2:
            self.notify(f"this run computes one MI estimator ({ests[0] if ests else 'none yet'})", timeout=4)
            return
        cur = self.vs.estimator if self.vs.estimator in ests else ests[0]
        self.set_view(estimator=ests[(ests.index(cur) + 1) % len(ests)])

    def action_pause(self) -> None:
        if self.view.finished is not None:
            self.notify("the run has ended", timeout=3)
            return
        self.controls.toggle_pause()
        self.poll(force=True)

    def action_layers(self) -> None:
        layers = self.view.layers()
        if not layers:
            return
        if self.vs.layer is None or self.vs.layer not in layers:
            nxt = layers[0] if self.vs.layer is None else None
        else:
            i = layers.index(self.vs.layer)
            nxt = layers[i + 1] if i + 1 < len(layers) else None
        self.set_view(layer=nxt)

    def action_seeds(self) -> None:
        self.set_view(per_seed=not self.vs.per_seed)

    def action_dynamics(self) -> None:
        i = DYNAMICS_QUANTITIES.index(self.vs.dynamics) if self.vs.dynamics in DYNAMICS_QUANTITIES else -1
        self.set_view(dynamics=DYNAMICS_QUANTITIES[(i + 1) % len(DYNAMICS_QUANTITIES)])

    def action_page(self, page: int) -> None:
        self.set_view(page=int(page))

    def action_next_page(self) -> None:
        self.set_view(page=self.vs.page % len(PAGES) + 1)

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss()
            return
        panes = [(StatusLine.HELP.split(":")[0], StatusLine.HELP.split(":", 1)[1].strip())]
        panes += [(type(p).TITLE, p.HELP) for p in self.query(Pane)]
        self.push_screen(HelpScreen(help_text(self.BINDINGS, panes, self.view.info, _snr_definition())))

    async def action_quit(self) -> None:
        if self.stopping:  # a second q: do not wait for the epoch to end (the thread still ends there)
            self.exit(return_code=0)
            return
        self.stopping = True
        self.controls.stop.set()
        self.poll(force=True)
        self.run_worker(self._finish_quit(), group="quit", exclusive=True)

    async def _finish_quit(self) -> None:
        if self.engine_worker is not None:
            with contextlib.suppress(WorkerFailed, WorkerCancelled):
                await self.engine_worker.wait()  # the thread returns at its next epoch boundary
        self.exit(return_code=1 if self.state.view().error else 0)

    def on_unmount(self) -> None:
        self.controls.stop.set()  # however the app ends, the engine thread must end too (tui.md §2, point 2)
        if warnings.showwarning == self._warning:
            warnings.showwarning = self._showwarning

    def _warning(self, message, category, filename, lineno, file=None, line=None) -> None:
        self.state.warn(f"{category.__name__}: {message} ({Path(filename).name}:{lineno})")


def _snr_definition() -> str:
    mod = sys.modules.get("ibtui.measures.gradients")  # only when the engine loaded it: never import torch here
    return getattr(mod, "SNR_DEFINITION", "") if mod is not None else ""


def _run(app: IbtuiApp, mouse: bool) -> int:
    """Run the app; warnings raised meanwhile become notices (stderr is the screen), and are printed,
    with the engine's traceback if it failed, once the terminal is restored."""
    app.run(mouse=mouse)
    view = app.state.view()
    for message in view.warnings:
        print(f"ibtui: warning during the run: {message}", file=sys.stderr)
    if view.error:
        print(f"ibtui: {view.error}\n{app.state.error_detail}".rstrip(), file=sys.stderr)
    return app.return_code or 0


def run_app(engine, sinks: list, fps: float = 3.0, mouse: bool = True) -> int:
    """Run the live app on `engine` (its `run` in a thread) with extra `sinks`; returns the exit code."""
    return _run(IbtuiApp(engine, sinks, fps=fps), mouse)


def view_app(csv_path, fps: float = 3.0, mouse: bool = True) -> int:
    """Open an exported run (finished or still being written) in the same panes, without training."""
    from ibtui.sinks.replay import CsvReplay

    path = Path(csv_path)
    return _run(IbtuiApp(CsvReplay(path), (), fps=fps, source_label=f"view {path.name}"), mouse)


if __name__ == "__main__":
    from ibtui.tui.fake_engine import main

    sys.exit(main())
