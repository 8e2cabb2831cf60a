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

from ibtui.api import OOM_HINT, build, check_numbers, check_torchrun_env, execute, first_line, kept, prepare
from ibtui.errors import IbtuiError
from ibtui.files import printable
from ibtui.scenario import load_scenario, to_toml, with_changes

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_show_locals=False,
                  rich_markup_mode=None,
                  help="Watch the information bottleneck at work: train a network and see the information plane "
                       "live.\n\n\b\nMain usage:\n  ibtui SCENARIO [OPTIONS]    train and watch (= ibtui run SCENARIO; "
                       "see ibtui run --help)\n  ibtui szt_tanh              a bundled scenario by name (ibtui scenarios)"
                       "\n  ibtui view run.csv          open an exported run")

COMMANDS = {"run", "resume", "show", "view", "plot", "scenarios", "reproduce"}


def fail(message: str) -> None:
    from ibtui.files import printable  # a name or key holding terminal escapes is shown, never obeyed

    try:
        typer.echo("ibtui: " + "\n".join(printable(line) for line in str(message).split("\n")), err=True)
    except OSError:  # stderr closed or full: the exit code still says it
        pass
    raise typer.Exit(code=2)


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()


# Options `run` and `resume` share (one definition each).
HEADLESS = typer.Option(False, "--headless", help="no app, even on a terminal")
QUIET = typer.Option(False, "--quiet", "-q", help="headless: no progress output")
PROGRESS_EVERY = typer.Option(15.0, "--progress-every", min=0.1,
                              help="headless, stderr not a terminal: seconds between progress lines")
THREADS = typer.Option(0, "--threads", help="CPU threads for torch (0 = 1 on a CPU run, torch's default with a GPU)")
FPS = typer.Option(3.0, "--fps", help="app redraws per second")
NO_MOUSE = typer.Option(False, "--no-mouse", help="app: do not capture the mouse")
DATA_DIR = typer.Option(None, "--data-dir", help="folder with image data (overrides data.dir; resume: if it moved)")


@app.command()
def run(
    scenario: Path = typer.Argument(..., help="scenario file, or a bundled scenario's name (`ibtui scenarios`)"),
    export: Optional[Path] = typer.Option(None, "--export", "-o", help="write every record to this CSV (+ .meta.json)"),
    set_: List[str] = typer.Option([], "--set", help="override a setting: section.key=value (repeatable)"),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N (overrides run.device)"),
    headless: bool = HEADLESS,
    quiet: bool = QUIET,
    progress_every: float = PROGRESS_EVERY,
    threads: int = THREADS,
    data_dir: Optional[Path] = DATA_DIR,
    fps: float = FPS,
    no_mouse: bool = NO_MOUSE,
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing export (only once the new run "
                                                              "has its first snapshot)"),
) -> None:
    """Train SCENARIO and measure it: the live app on a terminal; headless (a progress bar, or a line every
    15 s when stderr is a file) with --headless or without a terminal. --export writes the CSV either way."""
    rank = _torchrun_rank()
    try:  # every check that needs no torch comes first: bad input is refused at once, before any engine work
        sc = prepare(scenario, set_, device, data_dir, export, overwrite, threads, fps, rank)
    except IbtuiError as exc:
        fail(str(exc))
    _launch(sc, scenario, export, device, threads, overwrite, headless, quiet, progress_every, fps, no_mouse)


def _launch(sc, scenario: Path, export: Optional[Path], device: Optional[str], threads: int, overwrite: bool,
            headless: bool, quiet: bool, progress_every: float, fps: float, no_mouse: bool,
            resume: dict | None = None) -> None:
    """Run a checked scenario (a new run, or a checkpoint's with `resume`): the app on a terminal, else headless."""
    from ibtui.scenario import scenario_warnings

    rank = _torchrun_rank()
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
            engine, sinks, csv_sink = build(sc, scenario, export, device, threads, overwrite, say, resume=resume)
            guard.extend((_OutOfMemoryStops(engine), csv_sink))
            return guard[0], sinks

        # an IbtuiError in the factory: exit 2; the status line names the scenario from the first frame
        code = run_app(factory=factory, fps=fps, mouse=not no_mouse, name=sc.name)
        if guard and guard[0].oom:  # the app showed it as a warning; the terminal gets the sentence, exit 2
            fail(f"{guard[0].oom}{kept(guard[1])}; {OOM_HINT}")
        raise typer.Exit(code=code)
    for note in scenario_warnings(sc):  # the app shows them as run notes (Engine.info)
        typer.echo(f"ibtui: warning: {printable(note)}", err=True)
    from ibtui.engine import distributed as dist

    ctx = dist.context_from_env()
    try:
        engine, sinks, csv_sink = build(sc, scenario, export, device, threads, overwrite, ctx=ctx, resume=resume)
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
        if resume is not None and csv_sink is not None:  # the points before the checkpoint's (their rows: replay)
            from types import SimpleNamespace

            for point in csv_sink.meta.get("sweep_points") or []:
                report.start(SimpleNamespace(sweep=point["sweep"], layers=point["layers"]))
        sinks.append(report)
    _run_headless(engine, sinks, quiet, csv_sink, progress_every)
    if report is not None:
        typer.echo(report.text())


def _torchrun_rank() -> int | None:
    """This process's rank under torchrun (WORLD_SIZE > 1), else None; read without importing torch."""
    import os

    try:
        return int(os.environ.get("RANK", "0")) if int(os.environ.get("WORLD_SIZE", "1")) > 1 else None
    except ValueError:
        return None


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
            self.oom = f"out of memory at epoch {self._engine.epoch} ({first_line(exc)})"
            warnings.warn(f"{self.oom}; {OOM_HINT}", RuntimeWarning, stacklevel=1)
            return False


class _Stopped(KeyboardInterrupt):
    """A hang-up (the SSH session dropped) or a termination request, handled like Ctrl-C."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _stop_on_signals(controls) -> tuple[dict, list]:
    """Ctrl-C, SIGHUP and SIGTERM end a headless run at the end of the current epoch (so that its checkpoint
    matches the CSV): sinks closed, CSV valid, exit 128 + signal. A second signal stops at once (the last
    periodic checkpoint stays).

    Returns the handlers they replace, for `_restore_signals` (a run inside another program, e.g. a test), and
    the list that receives the first signal's number.
    """
    import signal

    received: list[int] = []

    def stop(signum, frame):
        if received or controls is None:
            raise _Stopped(signum)
        received.append(signum)
        controls.stop.set()
        try:
            typer.echo("ibtui: stopping at the end of this epoch (snapshots still being measured are dropped: "
                       "`ibtui resume` measures them again); send the signal again to stop at once.", err=True)
        except OSError:  # after a hang-up the terminal may be gone
            pass

    previous = {}
    for name in ("SIGINT", "SIGHUP", "SIGTERM"):
        if name == "SIGINT" and signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            continue  # Ctrl-C ignored (a background job) or handled by the program that called us: leave it so
        if hasattr(signal, name):
            previous[getattr(signal, name)] = signal.signal(getattr(signal, name), stop)
    return previous, received


def _restore_signals(previous: dict) -> None:
    import signal

    for signum, handler in previous.items():
        signal.signal(signum, handler)


def _run_headless(engine, sinks: list, quiet: bool, csv_sink=None, progress_every: float = 15.0) -> None:
    """The API's `execute` (the same run as `ibtui.run`) with the command line's signals and messages: the first
    Ctrl-C, hang-up or SIGTERM stops the run at the end of its epoch (its checkpoint then matches the export)."""
    from ibtui.controls import Controls

    controls = Controls()
    previous, received = _stop_on_signals(controls)
    try:
        execute(engine, sinks, quiet, csv_sink, progress_every, controls)
        if received:  # stopped at an epoch boundary by a signal (execute closed the sinks, unfinished)
            raise _Stopped(received[0])
    except KeyboardInterrupt as exc:
        try:  # after a hang-up the terminal may be gone
            typer.echo(f"ibtui: interrupted at epoch {engine.epoch}{kept(csv_sink)}{_resumable(sinks)}.", err=True)
        except OSError:
            pass
        signum = exc.signum if isinstance(exc, _Stopped) else 2
        raise typer.Exit(code=128 + signum)
    except IbtuiError as exc:
        fail(str(exc))
    finally:
        _restore_signals(previous)
    if csv_sink is not None and not quiet:
        typer.echo(f"ibtui: wrote {csv_sink.path} and {csv_sink.meta_path}", err=True)


def _resumable(sinks: list) -> str:
    """How to continue a stopped run, when it has a checkpoint."""
    from ibtui.sinks.checkpoint import CheckpointSink

    ck = next((s for s in sinks if isinstance(s, CheckpointSink)), None)
    if ck is None or ck.saved_epoch is None or not ck.path.is_file():
        return ""
    return f"; `ibtui resume {ck.csv.path}` continues from epoch {ck.saved_epoch}"


@app.command()
def resume(
    csv_path: Path = typer.Argument(..., help="the export of a run that was stopped or killed (its checkpoint is "
                                              "beside it: RUN.checkpoint.pt)"),
    headless: bool = HEADLESS,
    quiet: bool = QUIET,
    progress_every: float = PROGRESS_EVERY,
    threads: int = THREADS,
    data_dir: Optional[Path] = DATA_DIR,
    fps: float = FPS,
    no_mouse: bool = NO_MOUSE,
) -> None:
    """Continue a stopped or killed run from its last checkpoint: rows written after it are dropped and
    computed again, so the export ends as if the run had never stopped."""
    from ibtui.sinks.csv import rank_path

    rank = _torchrun_rank()
    target = rank_path(csv_path, rank) if rank is not None else csv_path
    try:
        check_numbers(threads, fps)
        check_torchrun_env()
        sc, ck = _resumable_run(target)
        if data_dir is not None:
            sc = with_changes(sc, {"data.dir": str(data_dir)}, origin="--data-dir")
    except IbtuiError as exc:
        fail(str(exc))
    _launch(sc, Path(ck.get("scenario_path") or csv_path), csv_path, None, threads, False, headless, quiet,
            progress_every, fps, no_mouse, resume=ck)


def _resumable_run(csv_path: Path):
    """(scenario, checkpoint) of an export that may be resumed; every refusal before any file is touched."""
    import json

    from ibtui.engine.checkpoint import check, load
    from ibtui.sinks.checkpoint import version
    from ibtui.sinks.csv import checkpoint_path, sidecar_path
    from ibtui.sinks.replay import writer_alive
    from ibtui.sinks.runs import check_meta

    meta_path = sidecar_path(csv_path)
    if not csv_path.is_file() or not meta_path.is_file():
        raise IbtuiError(f"{csv_path}: no such export (a CSV with its {meta_path.name} beside it); give the CSV "
                         f"that `ibtui SCENARIO --export FILE` wrote.")
    try:  # checked by the export reader's schema (sinks/runs.check_meta): a mistyped key counts as absent
        meta = check_meta(json.loads(meta_path.read_text(encoding="utf-8")))
        if meta is None:
            raise ValueError("not a JSON object")
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise IbtuiError(f"{meta_path}: not a readable sidecar ({exc}); it cannot be resumed.") from None
    if meta.get("finished") is True:
        raise IbtuiError(f"{csv_path}: the run finished; there is nothing to resume (start a new run to train "
                         f"again).")
    from ibtui.files import locked

    if locked(csv_path):  # the writer lock (files.WriterLock), held by a live run however its sidecar reads
        raise IbtuiError(f"{csv_path}: another ibtui is still writing this run (it holds the export's lock); stop it "
                         f"first, or wait for it to end.")
    if not meta.get("ended") and writer_alive(meta):  # an orderly stop sets `ended`; a killed writer never does
        pid = (meta.get("writer") or {}).get("pid")
        raise IbtuiError(f"{csv_path}: another ibtui (pid {pid}) is still writing this run; stop it first, or wait "
                         f"for it to end.")
    ck = load(checkpoint_path(csv_path))
    if ck.get("ibtui") != version():
        raise IbtuiError(f"{checkpoint_path(csv_path)}: written by ibtui {ck.get('ibtui')}, this is ibtui "
                         f"{version()}; resume it with that version, or start the run again.")
    if ck.get("run_id") != meta.get("run_id"):
        raise IbtuiError(f"{checkpoint_path(csv_path)}: belongs to another run than {csv_path} (an earlier run at "
                         f"this path); start the run again.")
    if ck.get("scenario_toml") != meta.get("scenario_toml"):
        raise IbtuiError(f"{checkpoint_path(csv_path)}: its scenario differs from the one in {meta_path.name}, so "
                         f"it belongs to another run; start the run again.")
    sc = check(ck, checkpoint_path(csv_path), csv_path)  # every field, against the scenario and the export
    ck["path"] = str(checkpoint_path(csv_path))
    scenario_path = (meta.get("run_info") or {}).get("scenario_path")
    ck["scenario_path"] = scenario_path if isinstance(scenario_path, str) else ""
    return sc, ck


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
    except KeyboardInterrupt:  # Ctrl-C while reading: nothing was written
        raise typer.Exit(code=130)
    try:
        for note in scenario_warnings(sc):
            typer.echo(f"ibtui: warning: {printable(note)}", err=True)
        typer.echo(to_toml(sc), nl=False)
        sys.stdout.flush()
    except BrokenPipeError:  # `ibtui show x | head`: the reader has what it wanted
        _quiet_stdout()
    except KeyboardInterrupt:
        raise typer.Exit(code=130)
    except OSError as exc:  # > /dev/full
        _quiet_stdout()
        fail(f"cannot write the scenario to standard output ({exc.strerror or exc}); redirect it elsewhere.")


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so Python's exit flush does not raise again on a closed or full stream."""
    import os

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


@app.command()
def view(
    csv_paths: List[Path] = typer.Argument(..., help="an exported run (finished or still being written); 2 to 8 "
                                                      "exports: compared in the same panes (r picks the bright one)"),
    fps: float = typer.Option(3.0, "--fps", help="redraws per second"),
) -> None:
    """Open an exported run in the app's panes, without training; several runs share the panes, each in its colour."""
    from ibtui.sinks.replay import check_export
    from ibtui.sinks.runs import MAX_RUNS

    if len(csv_paths) > MAX_RUNS:
        fail(f"{len(csv_paths)} exports given; compare at most {MAX_RUNS} at once.")
    try:  # before the app opens: a file that is not an export is one sentence, not an app waiting forever
        check_numbers(0, fps)
        for csv_path in csv_paths:
            check_export(csv_path)  # a link loop too (Path.resolve would raise RuntimeError on it)
    except IbtuiError as exc:
        fail(str(exc))
    if len({os.path.realpath(p) for p in csv_paths}) < len(csv_paths):
        fail("the same export is given twice; compare different runs.")
    if not (sys.stdin.isatty() and sys.stdout.isatty()):  # the app reads keys and draws: it would wait forever
        fail("ibtui view needs a terminal (standard input and output are not one); draw the figures with "
             "`ibtui plot` instead, or read the export in Python with ibtui.load.")
    try:
        from ibtui.tui.app import view_app
    except ImportError:
        fail("the terminal app is not available in this build.")
    raise typer.Exit(code=view_app(csv_paths if len(csv_paths) > 1 else csv_paths[0], fps=fps))


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
    csv_paths: List[Path] = typer.Argument(..., help="an exported run (finished or still being written); 2 to 8 "
                                                      "exports: their comparison"),
    out_dir: Optional[Path] = typer.Option(None, "--out", "-o",
                                           help="folder for the figures (default: <stem>_figures beside the CSV; "
                                                "comparison_figures beside the first when comparing)"),
    fmt: str = typer.Option("png", "--format", help="png, pdf or svg"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace figures already in the folder"),
) -> None:
    """Draw the papers' figures from an exported run: information plane, dynamics, training, clustering, sweep fits.
    With several exports (`ibtui plot a.csv b.csv -o DIR`): one comparison figure per kind, labelled by run."""
    try:
        import matplotlib  # noqa: F401  (an optional extra)
    except ImportError:
        fail("plotting needs matplotlib: pip install 'ibtui[plot]'")
    from ibtui.sinks.compare import draw_comparison
    from ibtui.sinks.figures import ExportError, draw_all

    skipped: list[str] = []
    try:
        if len(csv_paths) > 1:
            written = draw_comparison(csv_paths, out_dir, fmt, overwrite=overwrite, skipped=skipped)
        else:
            written = draw_all(csv_paths[0], out_dir, fmt, overwrite=overwrite, skipped=skipped)
    except ExportError as exc:
        fail(str(exc))
    if skipped:
        typer.echo(f"ibtui: skipped (no data in the export{'s' if len(csv_paths) > 1 else ''}): "
                   f"{', '.join(skipped)}", err=True)
    folder = written[0].parent if written else out_dir
    typer.echo(f"ibtui: wrote {len(written)} figure{'s' if len(written) != 1 else ''} to {folder}", err=True)


@app.command()
def reproduce(
    scale: str = typer.Option("cpu", "--scale", help="cpu (minutes), medium (~3 h on 2 cores) or full (the papers', a GPU)"),
    only: List[str] = typer.Option([], "--only", help="run only this claim's runs (repeatable); see --list"),
    list_: bool = typer.Option(False, "--list", help="list the claims and their runs, then stop"),
    out: Path = typer.Option(Path("reproduction"), "--out", help="folder for the report, figures and run exports"),
    report_only: bool = typer.Option(False, "--report-only", help="train nothing: rewrite the report from the exports"),
    force: bool = typer.Option(False, "--force", help="rerun runs whose finished export exists; with --report-only: "
                                                      "replace a report written from more runs than the exports give"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="folder with mnist/, mnist-5k/, "
                                            "cifar-10-batches-py/ (default $IBTUI_DATA)"),
    device: str = typer.Option("cpu", "--device", help="device for every run"),
    threads: int = typer.Option(1, "--threads", help="torch CPU threads a run"),
) -> None:
    """Reproduce the papers' claims: run each claim's runs at a scale and write OUT/REPRODUCTION.md."""
    from ibtui.reproduce.report import claim_names, listing
    from ibtui.reproduce.report import reproduce as run_claims
    from ibtui.reproduce.runner import SCALES

    if scale not in SCALES:
        fail(f"--scale {scale}: not a scale; use one of {', '.join(SCALES)}.")
    names = claim_names()
    for n in only:
        if n not in names:
            fail(f"--only {n}: no such claim; use one of {', '.join(names)} (see `ibtui reproduce --list`).")
    if list_:
        typer.echo(listing())
        return
    root = data_dir or Path(os.environ.get("IBTUI_DATA", "data"))
    try:  # an --out that is a file, a device or read-only, or a finished report that fewer runs would replace
        path = run_claims(scale, list(only), out, root, device, threads, report_only, force)
    except IbtuiError as exc:
        fail(str(exc))
    typer.echo(f"ibtui: wrote {path}", err=True)


def command_args(args: list[str]) -> list[str]:
    """`ibtui SCENARIO …` means `ibtui run SCENARIO …` (Typer has no default command)."""
    if args and args[0] not in COMMANDS and not args[0].startswith("-"):
        return ["run", *args]
    return list(args)


def main(argv: list[str] | None = None) -> None:
    """Entry point of `ibtui` and `python -m ibtui`."""
    for stream in (sys.stdout, sys.stderr):  # a latin-1 or ASCII terminal gets escapes, not UnicodeEncodeError
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError):
            pass
    try:
        app(args=command_args(list(sys.argv[1:] if argv is None else argv)), prog_name="ibtui")
    except SystemExit as done:
        _exit_now_if_abandoned(done.code)
        raise


def _exit_now_if_abandoned(code) -> None:
    """After a stop (`q`, a signal), a measuring job that was dropped may still be computing (its current layer in
    C) and the interpreter's teardown joins helper threads; the run's sinks are closed and nothing else is kept,
    so the process ends now: `q` and signals end it within a couple of seconds whatever was queued."""
    if "ibtui.engine.overlap" not in sys.modules or not sys.modules["ibtui.engine.overlap"].abandoned():
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code if isinstance(code, int) else (0 if code is None else 1))
