"""The `ibtui` command: run a scenario (live app on a terminal, headless otherwise), show it, or view a run.

Bad input (scenario file, key, value, device, data folder, export path) prints one sentence and
exits with code 2. Ctrl-C, a hang-up (SIGHUP: the SSH session dropped) or SIGTERM in a headless run keeps
the CSV valid and exits 128 + the signal's number (130 for Ctrl-C).
"""
from __future__ import annotations

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

COMMANDS = {"run", "show", "view", "plot", "scenarios"}


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
    threads: int = typer.Option(0, "--threads", help="CPU threads for torch (0 = 1 on a CPU run, torch's default with a GPU)"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="folder with image data (overrides data.dir)"),
    fps: float = typer.Option(3.0, "--fps", help="app redraws per second"),
    no_mouse: bool = typer.Option(False, "--no-mouse", help="app: do not capture the mouse"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing export (only once the new run "
                                                              "has its first snapshot)"),
) -> None:
    """Train SCENARIO and measure it: the live app on a terminal; headless (a progress bar, or a line every
    15 s when stderr is a file) with --headless or without a terminal. --export writes the CSV either way."""
    from ibtui.scenario import scenario_warnings
    from ibtui.sinks.csv import check_targets

    rank = _torchrun_rank()
    try:  # every check that needs no torch comes first: bad input is refused at once, before any engine work
        sc = load_scenario(scenario, set_)
        if device is not None:
            sc = with_changes(sc, {"run.device": device}, origin="--device")
        if data_dir is not None:
            sc = with_changes(sc, {"data.dir": str(data_dir)}, origin="--data-dir")
        _check_numbers(threads, fps)
        if export is not None:
            check_targets(export, overwrite, rank)
    except IbtuiError as exc:
        fail(str(exc))
    use_app = _interactive() and not headless and rank is None
    if use_app:
        try:
            from ibtui.tui.app import run_app
        except ImportError:
            use_app = False
    if use_app:  # the first frame at once: torch, the data and the model load in the app's worker thread
        guard: list = []

        def factory(say):
            say("loading torch…")
            engine, sinks, csv_sink = _build(sc, scenario, export, device, threads, overwrite, say)
            guard.extend((_OutOfMemoryStops(engine), csv_sink))
            return guard[0], sinks

        code = run_app(factory=factory, fps=fps, mouse=not no_mouse)  # an IbtuiError in the factory: exit 2
        if guard and guard[0].oom:  # the app showed it as a warning; the terminal gets the sentence, exit 2
            fail(f"{guard[0].oom}{_kept(guard[1])}; {OOM_HINT}")
        raise typer.Exit(code=code)
    for note in scenario_warnings(sc):  # the app shows them as run notes (Engine.info)
        typer.echo(f"ibtui: warning: {note}", err=True)
    from ibtui.engine import distributed as dist

    ctx = dist.context_from_env()
    try:
        engine, sinks, csv_sink = _build(sc, scenario, export, device, threads, overwrite, ctx=ctx)
    except IbtuiError as exc:
        fail(str(exc))
    if ctx.active:
        dist.init(ctx, sc.run.device)
        _run_headless(engine, sinks, quiet or ctx.rank > 0, csv_sink, progress_every)
        dist.barrier()
        if ctx.rank == 0 and export is not None:
            from ibtui.sinks.csv import merge

            rows = merge(export, ctx.world)
            if not quiet:
                typer.echo(f"ibtui: merged {ctx.world} ranks into {export} ({rows} rows)", err=True)
        raise typer.Exit(code=0)
    report = None
    if sc.sweep.setting:
        from ibtui.sinks.sweep_report import SweepReport  # prints the fitted trend at the end of a sweep

        report = SweepReport(sc)
        sinks.append(report)
    _run_headless(engine, sinks, quiet, csv_sink, progress_every)
    if report is not None:
        typer.echo(report.text())


# A CPU run trains on one torch thread unless --threads says otherwise: the SZT engine's steps are many tiny ops
# at which torch's threads wait on each other, so a busy core stalls all of them. benchmarks/bench_threads.py
# on a 2-core CPU, 20 seeds (busy: load ≈ 5–7 from other jobs): 1 thread 867 seed-epochs/s, 2 threads 32.
DEFAULT_CPU_THREADS = 1


def _build(sc, scenario: Path, export: Optional[Path], device: Optional[str], threads: int, overwrite: bool,
           say=None, ctx=None):
    """Import torch, check the device and memory, build the engine (data, model) and the CSV sink: what the
    app's worker runs (`say` reports each stage) and the headless path runs first. Raises IbtuiError."""
    import torch

    from ibtui.engine.device import resolve_device
    from ibtui.engine.sweep import SweepRunner
    from ibtui.resources import check_memory, is_out_of_memory
    from ibtui.scenario import sweep_point
    from ibtui.sinks.csv import CsvSink, rank_path

    try:
        try:
            resolve_device(sc.run.device, "--device" if device is not None else "run.device")
        except IbtuiError as exc:  # "--device = 'cuda' but …" reads better as "--device cuda: …"
            raise IbtuiError(str(exc).replace(f"--device = {sc.run.device.strip().lower()!r}", f"--device {device}", 1))
        if ctx is not None and ctx.active:  # torchrun: this process trains its block of seeds
            from ibtui.engine import distributed as dist

            sc = dist.shard(sc, ctx)
        if threads > 0:
            torch.set_num_threads(threads)
        elif resolve_device(sc.run.device).type == "cpu":
            torch.set_num_threads(DEFAULT_CPU_THREADS)
        if say is not None:
            say("loading the data and building the model…")
        points = [sweep_point(sc, v) for v in sc.sweep.values] if sc.sweep.setting else [sc]
        check_memory(points, resolve_device(sc.run.device))
        engine = SweepRunner(sc, scenario_path=str(scenario))
    except (MemoryError, RuntimeError) as exc:
        if not is_out_of_memory(exc):
            raise
        raise IbtuiError(f"out of memory while setting up the run ({_first_line(exc)}); {OOM_HINT}")
    sinks = []
    csv_sink = None
    if export is not None:
        target = rank_path(export, ctx.rank) if ctx is not None and ctx.active else export
        try:
            csv_sink = CsvSink(target, to_dict(sc), to_toml(sc), {"device": engine.info.device}, overwrite=overwrite)
        except FileExistsError:
            raise IbtuiError(f"--export {export}: {target} appeared since the start (another run?); it is kept: pass "
                             f"--overwrite to replace it, or pick another path.")
        except OSError as exc:
            raise IbtuiError(f"--export {export}: cannot write {exc.filename or target} ({exc.strerror or exc}); "
                             f"pick another path.")
        sinks.append(csv_sink)
    return engine, sinks, csv_sink


OOM_HINT = "use fewer seeds (run.seeds) or fewer measured points (data.mi_subset, measure.sp.points)."
MAX_THREADS = 4096


def _torchrun_rank() -> int | None:
    """This process's rank under torchrun (WORLD_SIZE > 1), else None; read without importing torch."""
    import os

    try:
        return int(os.environ.get("RANK", "0")) if int(os.environ.get("WORLD_SIZE", "1")) > 1 else None
    except ValueError:
        return None


def _check_numbers(threads: int, fps: float) -> None:
    import math

    from ibtui.errors import ScenarioError

    if not 0 <= threads <= MAX_THREADS:
        raise ScenarioError(f"--threads {threads} is out of range; use 0 (the default) to {MAX_THREADS}.")
    if not (math.isfinite(fps) and 0 < fps <= 1000):
        raise ScenarioError(f"--fps {fps} is out of range; use a number of redraws per second in (0, 1000].")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0][:200] if text else type(exc).__name__).rstrip(".")


class _OutOfMemoryStops:
    """For the app: an out-of-memory error stops the run as `q` would (sinks closed, CSV valid, sidecar
    unfinished) and is shown as a warning, instead of a failure with a traceback."""

    def __init__(self, engine):
        self._engine = engine
        self.oom = ""

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def run(self, sink, controls=None) -> bool:
        import warnings

        from ibtui.resources import is_out_of_memory

        try:
            return self._engine.run(sink, controls)
        except (MemoryError, RuntimeError) as exc:
            if not is_out_of_memory(exc):
                raise
            self.oom = f"out of memory at epoch {self._engine.epoch} ({_first_line(exc)})"
            warnings.warn(f"{self.oom}; {OOM_HINT}", RuntimeWarning, stacklevel=1)
            return False


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


def _run_headless(engine, sinks: list, quiet: bool, csv_sink=None, progress_every: float = 15.0) -> None:
    from ibtui.controls import Controls
    from ibtui.records import Fanout
    from ibtui.resources import is_out_of_memory
    from ibtui.sinks.progress import ProgressSink

    sink = Fanout([*sinks, *([] if quiet else [ProgressSink(every=progress_every)])])
    finished = False
    previous = _stop_on_signals()
    try:
        finished = engine.run(sink, Controls())
    except KeyboardInterrupt as exc:
        sink.close(False)
        try:  # after a hang-up the terminal may be gone
            typer.echo(f"ibtui: interrupted at epoch {engine.epoch}{_kept(csv_sink)}.", err=True)
        except OSError:
            pass
        raise typer.Exit(code=128 + exc.signum if isinstance(exc, _Stopped) else 130)
    except (MemoryError, RuntimeError, OSError) as exc:
        if is_out_of_memory(exc):  # like an interrupt: the CSV keeps every finished snapshot, the sidecar says unfinished
            sink.close(False)
            fail(f"out of memory at epoch {engine.epoch} ({_first_line(exc)}){_kept(csv_sink)}; {OOM_HINT}")
        if not isinstance(exc, OSError):
            raise
        try:  # the export's disk filled up or went away: keep what is on disk, say so
            sink.close(False)
        except OSError:
            pass
        fail(f"cannot write the export at epoch {engine.epoch} ({exc.strerror or exc}){_kept(csv_sink)}; "
             f"free some space or export elsewhere.")
    finally:
        _restore_signals(previous)
    sink.close(finished)
    if csv_sink is not None and not quiet:
        typer.echo(f"ibtui: wrote {csv_sink.path} and {csv_sink.meta_path}", err=True)


def _kept(csv_sink) -> str:
    """What the export holds after a run that stopped early (for the one-sentence message)."""
    if csv_sink is None:
        return ""
    if not csv_sink.replaced:
        return f"; no snapshot was finished, so {csv_sink.path} was left as it was"
    if csv_sink.last_epoch is None:
        return f"; {csv_sink.path} holds no snapshot yet"
    return f"; {csv_sink.path} holds every snapshot up to epoch {csv_sink.last_epoch}"


@app.command()
def show(
    scenario: Path = typer.Argument(..., help="scenario file, or a bundled scenario's name"),
    set_: List[str] = typer.Option([], "--set", help="override a setting: section.key=value (repeatable)"),
) -> None:
    """Print the fully resolved scenario (every setting, defaults included) as TOML."""
    from ibtui.scenario import scenario_warnings

    try:
        sc = load_scenario(scenario, set_)
    except IbtuiError as exc:
        fail(str(exc))
    for note in scenario_warnings(sc):
        typer.echo(f"ibtui: warning: {note}", err=True)
    typer.echo(to_toml(sc), nl=False)


@app.command()
def view(
    csv_path: Path = typer.Argument(..., help="an exported run (finished or still being written)"),
    fps: float = typer.Option(3.0, "--fps", help="redraws per second"),
) -> None:
    """Open an exported run in the app's panes, without training."""
    if not csv_path.is_file():
        fail(f"{csv_path}: no such file; give the CSV written by `ibtui SCENARIO --export FILE`.")
    from ibtui.sinks.replay import check_export

    try:  # before the app opens: a file that is not an export is one sentence, not an app waiting forever
        _check_numbers(0, fps)
        check_export(csv_path)
    except IbtuiError as exc:
        fail(str(exc))
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


@app.command()
def plot(
    csv_path: Path = typer.Argument(..., help="an exported run (finished or still being written)"),
    out_dir: Optional[Path] = typer.Option(None, "--out", "-o",
                                           help="folder for the figures (default: <stem>_figures beside the CSV)"),
    fmt: str = typer.Option("png", "--format", help="png, pdf or svg"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace figures already in the folder"),
) -> None:
    """Draw the papers' figures from an exported run: information plane, dynamics, training, clustering, sweep fits."""
    try:
        import matplotlib  # noqa: F401  (an optional extra)
    except ImportError:
        fail("plotting needs matplotlib: pip install 'ibtui[plot]'")
    from ibtui.sinks.figures import ExportError, draw_all

    skipped: list[str] = []
    try:
        written = draw_all(csv_path, out_dir, fmt, overwrite=overwrite, skipped=skipped)
    except ExportError as exc:
        fail(str(exc))
    if skipped:
        typer.echo(f"ibtui: skipped (no data in the export): {', '.join(skipped)}", err=True)
    folder = written[0].parent if written else out_dir
    typer.echo(f"ibtui: wrote {len(written)} figure{'s' if len(written) != 1 else ''} to {folder}", err=True)


def command_args(args: list[str]) -> list[str]:
    """`ibtui SCENARIO …` means `ibtui run SCENARIO …` (Typer has no default command)."""
    if args and args[0] not in COMMANDS and not args[0].startswith("-"):
        return ["run", *args]
    return list(args)


def main(argv: list[str] | None = None) -> None:
    """Entry point of `ibtui` and `python -m ibtui`."""
    app(args=command_args(list(sys.argv[1:] if argv is None else argv)), prog_name="ibtui")
