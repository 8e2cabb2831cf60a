"""The live terminal app: the engine in a thread worker, the panes drawn from a polled state.

Pattern: the engine runs in `@work(thread=True)` and writes only to `TuiState` (a sink,
lock-protected, versioned) and the other sinks (the CSV export); keys write only to `Controls`. The
app polls the state at `fps` (default 3 Hz) and redraws visible panes only when the version changed,
so a paused or finished run costs nearly nothing and the engine never waits on the UI. Quitting sets
`controls.stop`, waits for the thread to return (never `Worker.cancel()`, which does not stop a
thread), closes the sinks (the CSV is flushed, its sidecar says whether the run finished) and exits 0.

Layout: a two-line status, then either every pane in a grid (terminals of 120×36 and more) or one
page at a time (keys 1-4, tab) on smaller ones; below 60×20 one sentence replaces the layout.

`run_app(factory=...)` and `view_app(csv_path)` are what the CLI calls. The factory builds the engine in
the worker thread (torch is imported there), so the first frame appears at once and the status line says
what the engine is doing until its first snapshot. Notes and definitions are on the `?` screen; answers
to keys go to a one-line message area, never over a plot.
"""
from __future__ import annotations

import contextlib
import sys
import traceback
import warnings
from dataclasses import replace
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.widgets import Footer, Static
from textual.worker import WorkerCancelled, WorkerFailed

from ibtui.controls import Controls
from ibtui.files import printable
from ibtui.tui.help import HelpScreen, help_text
from ibtui.tui.panes.base import Pane
from ibtui.tui.panes.bound import BoundPane
from ibtui.tui.panes.clustering import ClusteringPane
from ibtui.tui.panes.dynamics import DynamicsPane
from ibtui.tui.panes.info_plane import InfoPlanePane
from ibtui.tui.panes.loss import LossPane
from ibtui.tui.panes.status import RunFlags, StatusLine
from ibtui.tui.state import DYNAMICS_QUANTITIES, StateView, TuiState, ViewState
from ibtui.quantities import QUANTITIES
from ibtui.records import Fanout

MIN_SIZE = (60, 20)  # below this, one sentence instead of the layout
WIDE_SIZE = (120, 36)  # from this up, every pane at once
PAGES = {1: "plane", 2: "dynamics", 3: "clusters", 4: "loss"}


class _QuitWhileBuilding(Exception):
    """`q` was pressed while the factory built the engine: the build ends at its next stage."""


class IbtuiApp(App):
    """The app. `source` is the engine (or a CsvReplay): `info`, `run(sinks, controls) -> bool`."""

    CSS_PATH = "ibtui.tcss"
    TITLE = "ibtui"
    ENABLE_COMMAND_PALETTE = False
    # Footer order = priority: ? and q first, so a narrow terminal never hides them; short labels so every
    # key fits at 80 columns. The long descriptions (tooltip) are on the help screen.
    BINDINGS = [
        Binding("question_mark,f1", "help", "help", key_display="?", tooltip="this screen (keys, panes, the run)"),
        Binding("q", "quit", "quit", tooltip="stop the engine, flush the export, exit (a second q forces)"),
        Binding("space", "pause", "pause", key_display="␣", tooltip="pause / resume training (or following a CSV)"),
        Binding("n", "noise", "noise", tooltip="cycle the noise level β (applied at the next epoch, marked *)"),
        Binding("r", "bright", "run", tooltip="comparing runs (ibtui view a.csv b.csv): draw the next run bright, "
                                              "in layer digits on top; the others dim"),
        Binding("e", "estimator", "est", tooltip="cycle the MI estimator shown (all are computed)"),
        Binding("l", "layers", "layer", tooltip="all layers, then one at a time"),
        Binding("s", "seeds", "seeds", tooltip="mean over seeds / each seed's trajectory, faint"),
        Binding("d", "dynamics", "dyn",
                tooltip="dynamics plot (page 2): SNR, gradient mean, std, weight change, weight norm"),
        Binding("v", "sweep", "value", tooltip="sweeps: show the next sweep value (every point is kept)"),
        Binding("tab", "next_page", "page", priority=True, tooltip="small terminals: next page (or 1-4)"),
        Binding("ctrl+c", "quit", "", show=False, priority=True),
        Binding("1", "page(1)", "Page 1", show=False, tooltip="small terminals: information plane"),
        Binding("2", "page(2)", "Page 2", show=False, tooltip="small terminals: dynamics"),
        Binding("3", "page(3)", "Page 3", show=False, tooltip="small terminals: Gaussian bound, transitions, clustering"),
        Binding("4", "page(4)", "Page 4", show=False, tooltip="small terminals: loss and accuracy"),
    ]

    def __init__(self, source=None, sinks: list | tuple = (), fps: float = 3.0, controls: Controls | None = None,
                 source_label: str = "", factory=None, name: str = ""):
        """`source` is the engine (or a CsvReplay); or `factory(say)` builds it in the worker thread and returns
        `(source, extra_sinks)`, calling `say("building the model…")` as it goes, so the first frame does not
        wait for torch. An IbtuiError from the factory ends the app with that sentence and exit code 2."""
        super().__init__()
        if fps <= 0:
            raise ValueError("fps must be positive")
        if (source is None) == (factory is None):
            raise ValueError("give a source or a factory")
        self.source = source
        self.factory = factory
        self.exit_message = ""  # printed after the terminal is restored (a bad scenario or data folder)
        self.sinks = list(sinks)
        self.fps = fps
        self.controls = controls or Controls()
        self.controls.live = True  # the engine keeps what is drawn at most a few seconds old
        self.run_name = name  # the scenario's name: the status line shows it from the first frame
        self.state = TuiState()
        self.vs = ViewState()
        self.source_label = source_label  # "view run.csv" in replay mode
        self.runs: tuple[str, ...] = tuple(getattr(source, "run_labels", ()) or ())  # comparing runs: their names
        if self.runs:
            self.vs = ViewState(sweep=self.runs[0])  # the first run bright
        self.view: StateView = self.state.view()
        self.engine_worker = None
        self.stopping = False
        self.redraws = 0  # pane redraws done (tests, cost checks)
        self._seen: tuple | None = None
        self._warnings_shown = 0
        self.message = ""  # the one-line message area (keys' answers); covers no data
        self._message_timer = None
        self._showwarning = warnings.showwarning

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield StatusLine(id="status")
        yield Static("", id="pagebar")  # page tabs (small terminals) and the one-line message area
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
        self.refresh_bindings()
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
            if self.source is None:
                if not self._build():
                    return False
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

    def _build(self) -> bool:
        """Worker thread: run the factory (imports torch, loads data, builds the model)."""
        from ibtui.errors import IbtuiError

        self.state.set_stage("loading torch…")

        def say(text: str) -> None:  # `q` while the engine is built: stop before the next stage (no file made yet)
            if self.controls.stop.is_set():
                raise _QuitWhileBuilding
            self.state.set_stage(text)

        try:
            source, sinks = self.factory(say)
        except _QuitWhileBuilding:
            return False
        except IbtuiError as exc:  # bad input found while building: one sentence, exit 2 (as the CLI does)
            self.exit_message = str(exc)
            self.state.set_stage("")
            with contextlib.suppress(RuntimeError):  # the app may already be closing
                self.call_from_thread(self.exit, None, 2)
            return False
        if self.controls.stop.is_set():  # quit while building
            for sink in sinks:
                with contextlib.suppress(Exception):
                    sink.close(False)
            return False
        self.source = source
        self.sinks.extend(sinks)
        return True

    # ------------------------------------------------------------------ polling and drawing
    def flags(self) -> RunFlags:
        requested = None
        idx = self.controls.noise_index
        info = self.view.info
        if idx is not None and info is not None and info.noise_levels:
            requested = info.noise_levels[idx % len(info.noise_levels)]
        return RunFlags(paused=self.controls.paused.is_set(), stopping=self.stopping,
                        noise_requested=requested, source=self.source_label,
                        stalled=getattr(self.source, "stalled", ""), runs=self.runs, name=self.run_name)

    def poll(self, force: bool = False) -> None:
        """Timer callback: redraw what changed since the last call (nothing when nothing did)."""
        flags = self.flags()
        panes = list(self.query(Pane))
        seen = (self.state.version, flags, self.vs, self.layout_mode, self.message,
                tuple(p.size.width for p in panes))
        if seen == self._seen and not force:
            return
        self._seen = seen
        had_info = self.view.info is not None
        view = self.state.view(self.vs.sweep)
        if self.runs:  # comparing runs: every run's view, the bright one's as the main view
            view = replace(view, runs=tuple((label, self.state.view(label)) for label in self.runs),
                           data_version=self.state.data_version)
        self.view = view
        if not had_info and view.info is not None:
            self.refresh_bindings()  # v appears once the run says it is a sweep
        for message in view.warnings[self._warnings_shown:]:
            self.say(f"warning: {message}", 10)
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

    def page_bar(self) -> Text:
        """Small terminals: the page tabs, then the message area; big ones: the message area only."""
        line = Text(no_wrap=True, overflow="ellipsis")
        if self.layout_mode == "compact":
            for k, name in PAGES.items():  # with a message, only the current page's tab
                if k == self.vs.page or not self.message:
                    line.append(f" {k} {name} ", style="reverse" if k == self.vs.page else "")
            line.append(" ")
        if self.message:
            line.append(self.message, style="bold")
        elif self.layout_mode == "compact":
            line.append("tab: next page", style="dim")
        return line

    def say(self, message: str, seconds: float = 5.0) -> None:
        """Show a transient answer to a key in the one-line message area (it covers no data)."""
        self.message = printable(message)  # a warning may quote a name from a scenario or an export: escaped
        if self._message_timer is not None:
            self._message_timer.stop()
        self._message_timer = self.set_timer(seconds, self._clear_message)
        if self.is_running:
            self.query_one("#pagebar", Static).update(self.page_bar())

    def _clear_message(self) -> None:
        self.message = ""
        self.poll(force=True)

    def notify(self, message: str, **kw) -> None:  # every notice goes to the message area, not over a plot
        self.say(message, kw.get("timeout") or 5.0)

    def set_view(self, **changes) -> None:
        self.vs = replace(self.vs, **changes)
        self.poll(force=True)

    # ------------------------------------------------------------------ keys
    def check_action(self, action: str, parameters) -> bool | None:
        """Hide keys that do nothing here from the footer: v outside sweeps, tab/pages when all panes show."""
        if self.runs and action in ("sweep", "noise", "pause"):
            return False  # comparing finished runs: nothing to follow, no noise, no sweep (r picks the run)
        if action == "bright":
            return bool(self.runs)
        if action == "sweep":
            info = self.view.info
            return bool(info is not None and info.sweep_points) or len(self.state.sweeps()) > 1
        if action == "next_page":
            return self.layout_mode != "wide"
        return True

    def action_noise(self) -> None:
        info = self.view.info
        if self.source_label:
            self.say("viewing a recorded run: the noise level cannot change")
            return
        if info is None or len(info.noise_levels) < 2:
            levels = ", ".join(f"{b:g}" for b in info.noise_levels) if info is not None else "–"
            self.say(f"one noise level (β = {levels}); list more in model.noise_levels to cycle")
            return
        levels = list(info.noise_levels)
        current = self.controls.noise_index
        if current is None:
            current = levels.index(self.view.beta) if self.view.beta in levels else 0
        self.controls.request_noise((current + 1) % len(levels))
        self.say(f"noise β = {levels[(current + 1) % len(levels)]:g} from the next epoch")

    def action_estimator(self) -> None:
        ests = self.view.estimators()
        if len(ests) < 2:
            self.say(f"this run computes one MI estimator ({ests[0] if ests else 'none yet'})")
            return
        cur = self.vs.estimator if self.vs.estimator in ests else ests[0]
        self.set_view(estimator=ests[(ests.index(cur) + 1) % len(ests)])

    def action_pause(self) -> None:
        if self.view.finished is not None:
            self.say("the run has ended")
            return
        paused = self.controls.toggle_pause()
        self.say("paused at the end of this epoch" if paused else "resumed", 3)

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
        """Cycle the dynamics quantity; on a small terminal, first show the dynamics page."""
        if self.layout_mode == "compact" and self.vs.page != DynamicsPane.PAGE:
            self.set_view(page=DynamicsPane.PAGE)
            self.say(f"dynamics: {QUANTITIES[self.vs.dynamics].label}; d again for the next quantity", 4)
            return
        i = DYNAMICS_QUANTITIES.index(self.vs.dynamics) if self.vs.dynamics in DYNAMICS_QUANTITIES else -1
        q = DYNAMICS_QUANTITIES[(i + 1) % len(DYNAMICS_QUANTITIES)]
        self.set_view(dynamics=q)
        self.say(f"dynamics: {QUANTITIES[q].label}", 3)

    def action_sweep(self) -> None:
        """Show the next sweep point (every point's series are kept)."""
        points = self.state.sweeps()
        if len(points) < 2:
            self.say("not a sweep: one run only" if not self.view.info or not self.view.info.sweep_points
                     else "the other sweep values have no records yet")
            return
        cur = self.view.sweep if self.view.sweep in points else points[0]
        nxt = points[(points.index(cur) + 1) % len(points)]
        self.set_view(sweep=nxt)
        live = self.state.view().live_sweep
        self.say(f"sweep value {nxt}" + (" (running)" if nxt == live else " (done)" if live != nxt else ""), 4)

    def action_bright(self) -> None:
        """Comparing runs: the next run is drawn bright (layer digits, on top), the others dim."""
        if not self.runs:
            self.say("one run: compare runs with ibtui view a.csv b.csv")
            return
        cur = self.vs.sweep if self.vs.sweep in self.runs else self.runs[0]
        nxt = self.runs[(self.runs.index(cur) + 1) % len(self.runs)]
        self.set_view(sweep=nxt)
        self.say(f"bright: {nxt} ({self.runs.index(nxt) + 1}/{len(self.runs)})", 3)

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
        self.push_screen(HelpScreen(help_text(self.BINDINGS, panes, self.view.info)))

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
        self.controls.stop.set()  # however the app ends, the engine thread must end too
        if warnings.showwarning == self._warning:
            warnings.showwarning = self._showwarning

    def _warning(self, message, category, filename, lineno, file=None, line=None) -> None:
        self.state.warn(f"{category.__name__}: {message} ({Path(filename).name}:{lineno})")


def _run(app: IbtuiApp, mouse: bool) -> int:
    """Run the app; warnings raised meanwhile become notices (stderr is the screen), and are printed,
    with the engine's traceback if it failed, once the terminal is restored."""
    app.run(mouse=mouse)
    if app.exit_message:
        print(f"ibtui: {printable(app.exit_message)}", file=sys.stderr)
        return 2
    view = app.state.view()
    for message in view.warnings:
        print(f"ibtui: warning during the run: {printable(message)}", file=sys.stderr)
    if view.error:
        print(f"ibtui: {view.error}\n{app.state.error_detail}".rstrip(), file=sys.stderr)
    return app.return_code or 0


def run_app(engine=None, sinks: list = (), fps: float = 3.0, mouse: bool = True, factory=None, name: str = "") -> int:
    """Run the live app on `engine` (its `run` in a thread) with extra `sinks`, or on what `factory(say)`
    builds in the thread (see IbtuiApp; `name`: the scenario's, shown before the engine exists); returns the exit
    code."""
    return _run(IbtuiApp(engine, sinks, fps=fps, factory=factory, name=name), mouse)


def view_app(csv_paths, fps: float = 3.0, mouse: bool = True) -> int:
    """Open an exported run (finished or still being written) in the same panes, without training; several
    exports (a list of 2-8 paths) share the panes, compared (`r` picks the bright run)."""
    from ibtui.sinks.replay import CompareReplay, CsvReplay

    paths = [Path(p) for p in csv_paths] if isinstance(csv_paths, (list, tuple)) else [Path(csv_paths)]
    if len(paths) > 1:
        return _run(IbtuiApp(CompareReplay(paths), (), fps=fps, source_label=f"view {len(paths)} runs"), mouse)
    return _run(IbtuiApp(CsvReplay(paths[0]), (), fps=fps, source_label=f"view {paths[0].name}"), mouse)


