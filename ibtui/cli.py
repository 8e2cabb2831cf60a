"""The `ibtui` command: run a scenario (live app on a terminal, headless otherwise), show it, or view a run.

Bad input (scenario file, key, value, device, data folder, export path) prints one sentence and
exits with code 2. Ctrl-C, a hang-up (SIGHUP: the SSH session dropped) or SIGTERM in a headless run keeps
the CSV valid and exits 128 + the signal's number (130 for Ctrl-C).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

from ibtui.errors import IbtuiError
from ibtui.scenario import load_scenario, to_dict, to_toml, with_changes

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_show_locals=False,
                  rich_markup_mode=None,
                  help="Watch the information bottleneck at work: train a network and see the information plane "
                       "live.\n\n\b\nMain usage:\n  ibtui SCENARIO [OPTIONS]    train and watch (= ibtui run SCENARIO; "
                       "see ibtui run --help)\n  ibtui szt_tanh              a bundled scenario by name (ibtui scenarios)"
                       "\n  ibtui view run.csv          open an exported run")

COMMANDS = {"run", "show", "view", "scenarios"}


def fail(message: str) -> None:
    typer.echo(f"ibtui: {message}", err=True)
    raise typer.Exit(code=2)


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()


@app.command()
def run(
    scenario: Path = typer.Argument(..., help="scenario file, or a bundled scenario's name (`ibtui scenarios`)"),
    export: Optional[Path] = typer.Option(None, "--export", "-o", help="write every record to this CSV (+ .meta.json)"),
    set_: List[str] = typer.Option([], "--set", help="override a setting: section.key=value (repeatable)"),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N (overrides run.device)"),
    headless: bool = typer.Option(False, "--headless", help="no app, even on a terminal"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="headless: no progress output"),
    progress_every: float = typer.Option(15.0, "--progress-every", min=0.1,
                                         help="headless, stderr not a terminal: seconds between progress lines"),
    threads: int = typer.Option(0, "--threads", help="CPU threads for torch (0 = torch's default)"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="folder with image data (overrides data.dir)"),
    fps: float = typer.Option(3.0, "--fps", help="app redraws per second"),
    no_mouse: bool = typer.Option(False, "--no-mouse", help="app: do not capture the mouse"),
) -> None:
    """Train SCENARIO and measure it: the live app on a terminal; headless (a progress bar, or a line every
    15 s when stderr is a file) with --headless or without a terminal. --export writes the CSV either way."""
    try:  # torch-free: a bad scenario is refused before anything slow starts
        sc = load_scenario(scenario, set_)
        if device is not None:
            sc = with_changes(sc, {"run.device": device})
        if data_dir is not None:
            sc = with_changes(sc, {"data.dir": str(data_dir)})
    except IbtuiError as exc:
        fail(str(exc))
    if export is not None and str(export.parent) and not export.parent.exists():
        fail(f"--export {export}: the folder {export.parent} does not exist; create it or pick another path.")
    use_app = _interactive() and not headless and int(os.environ.get("WORLD_SIZE", "1") or 1) <= 1
    if use_app:
        try:
            from ibtui.tui.app import run_app
        except ImportError:
            use_app = False
    if use_app:  # the first frame at once; torch, the data and the model load in the app's worker thread
        def factory(say):
            say("loading torch…")
            import torch

            from ibtui.engine.sweep import SweepRunner
            from ibtui.sinks.csv import CsvSink

            if threads > 0:
                torch.set_num_threads(threads)
            say("loading the data and building the model…")
            engine = SweepRunner(sc, scenario_path=str(scenario))
            sinks = []
            if export is not None:
                try:
                    sinks.append(CsvSink(export, to_dict(sc), to_toml(sc), {"device": engine.info.device}))
                except OSError as exc:
                    raise IbtuiError(f"--export {export}: cannot write there ({exc.strerror}); pick another path.")
            return engine, sinks

        raise typer.Exit(code=run_app(factory=factory, fps=fps, mouse=not no_mouse))

    import torch

    from ibtui.engine.sweep import SweepRunner
    from ibtui.sinks.csv import CsvSink, merge, rank_path

    from ibtui.engine import distributed as dist

    ctx = dist.context_from_env()
    try:
        if ctx.active:  # torchrun: this process trains its block of seeds
            sc = dist.shard(sc, ctx)
        if threads > 0:
            torch.set_num_threads(threads)
        engine = SweepRunner(sc, scenario_path=str(scenario))
    except IbtuiError as exc:
        fail(str(exc))
    sinks = []
    if export is not None:
        target = rank_path(export, ctx.rank) if ctx.active else export
        try:
            sinks.append(CsvSink(target, to_dict(sc), to_toml(sc), {"device": engine.info.device}))
        except OSError as exc:
            fail(f"--export {export}: cannot write there ({exc.strerror}); pick another path.")
    if ctx.active:
        dist.init(ctx, sc.run.device)
        _run_headless(engine, sinks, quiet or ctx.rank > 0, None, progress_every)
        dist.barrier()
        if ctx.rank == 0 and export is not None:
            rows = merge(export, ctx.world)
            if not quiet:
                typer.echo(f"ibtui: merged {ctx.world} ranks into {export} ({rows} rows)", err=True)
        raise typer.Exit(code=0)
    report = None
    if sc.sweep.setting:
        from ibtui.sinks.sweep_report import SweepReport  # prints the fitted trend at the end of a sweep

        report = SweepReport(sc)
        sinks.append(report)
    _run_headless(engine, sinks, quiet, export, progress_every)
    if report is not None:
        typer.echo(report.text())


class _Stopped(KeyboardInterrupt):
    """A hang-up (the SSH session dropped) or a termination request, handled like Ctrl-C."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _stop_on_signals() -> dict:
    """SIGHUP and SIGTERM end a headless run as Ctrl-C does: sinks closed, CSV valid, exit 128 + signal.

    Returns the handlers they replace, for `_restore_signals` (a run inside another program, e.g. a test).
    """
    import signal

    def stop(signum, frame):
        raise _Stopped(signum)

    previous = {}
    for name in ("SIGHUP", "SIGTERM"):
        if hasattr(signal, name):
            previous[getattr(signal, name)] = signal.signal(getattr(signal, name), stop)
    return previous


def _restore_signals(previous: dict) -> None:
    import signal

    for signum, handler in previous.items():
        signal.signal(signum, handler)


def _run_headless(engine, sinks: list, quiet: bool, export: Optional[Path], progress_every: float = 15.0) -> None:
    from ibtui.controls import Controls
    from ibtui.records import Fanout
    from ibtui.sinks.progress import ProgressSink

    sink = Fanout([*sinks, *([] if quiet else [ProgressSink(every=progress_every)])])
    finished = False
    previous = _stop_on_signals()
    try:
        finished = engine.run(sink, Controls())
    except KeyboardInterrupt as exc:
        sink.close(False)
        where = f"; {export} holds every snapshot up to epoch {engine.epoch}" if export else ""
        try:  # after a hang-up the terminal may be gone
            typer.echo(f"ibtui: interrupted at epoch {engine.epoch}{where}.", err=True)
        except OSError:
            pass
        raise typer.Exit(code=128 + exc.signum if isinstance(exc, _Stopped) else 130)
    finally:
        _restore_signals(previous)
    sink.close(finished)
    if export is not None and not quiet:
        typer.echo(f"ibtui: wrote {export} and {export.with_name(export.stem + '.meta.json')}", err=True)


@app.command()
def show(
    scenario: Path = typer.Argument(..., help="scenario file, or a bundled scenario's name"),
    set_: List[str] = typer.Option([], "--set", help="override a setting: section.key=value (repeatable)"),
) -> None:
    """Print the fully resolved scenario (every setting, defaults included) as TOML."""
    try:
        sc = load_scenario(scenario, set_)
    except IbtuiError as exc:
        fail(str(exc))
    typer.echo(to_toml(sc), nl=False)


@app.command()
def view(
    csv_path: Path = typer.Argument(..., help="an exported run (finished or still being written)"),
    fps: float = typer.Option(3.0, "--fps", help="redraws per second"),
) -> None:
    """Open an exported run in the app's panes, without training."""
    if not csv_path.is_file():
        fail(f"{csv_path}: no such file; give the CSV written by `ibtui SCENARIO --export FILE`.")
    try:
        from ibtui.tui.app import view_app
    except ImportError:
        fail("the terminal app is not available in this build.")
    raise typer.Exit(code=view_app(csv_path, fps=fps))


@app.command("scenarios")
def list_scenarios() -> None:
    """List the bundled scenarios (run one by name from any folder: `ibtui szt_tanh`)."""
    from ibtui.scenario import bundled_scenarios, scenario_description

    bundled = bundled_scenarios()
    width = max(map(len, bundled), default=0)
    for name, path in bundled.items():
        typer.echo(f"{name:<{width}}  {scenario_description(path)}")


def command_args(args: list[str]) -> list[str]:
    """`ibtui SCENARIO …` means `ibtui run SCENARIO …` (Typer has no default command)."""
    if args and args[0] not in COMMANDS and not args[0].startswith("-"):
        return ["run", *args]
    return list(args)


def main(argv: list[str] | None = None) -> None:
    """Entry point of `ibtui` and `python -m ibtui`."""
    app(args=command_args(list(sys.argv[1:] if argv is None else argv)), prog_name="ibtui")
