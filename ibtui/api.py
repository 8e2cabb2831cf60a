"""The Python face of ibtui: `run(scenario, set={...}) -> Run` and `load(path) -> Run`, for notebooks and scripts.

`run` is the CLI's headless run (`ibtui SCENARIO --headless`), the same functions in the same order: the
scenario is loaded and validated (`prepare`), the engine and the CSV sink are built (`build`), and the run
goes to the end (`execute`); the CLI adds only its signal handling and its messages. Bad input raises the
`IbtuiError` whose sentence the CLI prints. torch is imported only when a run starts (`build`), so
`import ibtui` and `ibtui.load` stay light.
"""
from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ibtui.errors import IbtuiError, ScenarioError

if TYPE_CHECKING:
    from ibtui.sinks.runs import Run

__all__ = ["run", "load"]

OOM_HINT = "use fewer seeds (run.seeds) or fewer measured points (data.mi_subset, measure.sp.points)."
MAX_THREADS = 4096
# A CPU run trains on one torch thread unless --threads says otherwise: the SZT engine's steps are many tiny ops
# at which torch's threads wait on each other, so a busy core stalls all of them. benchmarks/bench_threads.py
# on a 2-core CPU, 20 seeds (busy: load ≈ 5–7 from other jobs): 1 thread 867 seed-epochs/s, 2 threads 32.
DEFAULT_CPU_THREADS = 1


def load(path: str | Path) -> "Run":
    """An export (`ibtui SCENARIO --export run.csv`, finished or still written) and its sidecar, as a Run:
    `meta`, `layers`, `estimators`, `seeds`, `sweeps`, `series(quantity, …) -> (epochs, values)`, `frame()`.
    ExportError (one sentence) for a file that is not an export."""
    from ibtui.sinks.runs import load as read

    _path_arg(path, "export", optional=False)
    return read(path)


def check_numbers(threads: int, fps: float = 3.0) -> None:
    import os

    if isinstance(threads, bool) or not isinstance(threads, int):
        raise ScenarioError(f"--threads {_short(threads)} is not a whole number; use 0 (the default) to {MAX_THREADS}.")
    if isinstance(fps, bool) or not isinstance(fps, (int, float)):
        raise ScenarioError(f"--fps {_short(fps)} is not a number; use a number of redraws per second in (0, 1000].")
    if not 0 <= threads <= MAX_THREADS:
        raise ScenarioError(f"--threads {threads} is out of range; use 0 (the default) to {MAX_THREADS}.")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if threads > cores:  # more threads than cores only slows torch down (4096 on 2 cores: 40 times slower)
        raise ScenarioError(f"--threads {threads} is more than the {cores} CPU cores this process may use; use at "
                            f"most {cores} (0 = the default).")
    if not (math.isfinite(fps) and 0 < fps <= 1000):
        raise ScenarioError(f"--fps {fps} is out of range; use a number of redraws per second in (0, 1000].")


def check_torchrun_env() -> None:
    """WORLD_SIZE and RANK as torchrun sets them (with MASTER_ADDR and MASTER_PORT), or not at all: a half-set
    environment is one sentence here, before any rank file is written, not a traceback from torch.distributed."""
    import os

    env = os.environ
    if "WORLD_SIZE" not in env and "RANK" not in env:
        return
    try:
        world, rank = int(env.get("WORLD_SIZE", "1")), int(env.get("RANK", "0"))
    except ValueError:
        raise ScenarioError(f"WORLD_SIZE={env.get('WORLD_SIZE', '')!r} and RANK={env.get('RANK', '')!r} must be "
                            f"integers; start ibtui with torchrun, or unset them.") from None
    if world < 1 or not 0 <= rank < world:
        raise ScenarioError(f"RANK={rank} with WORLD_SIZE={world}: a rank is 0 … WORLD_SIZE−1; start ibtui with "
                            f"torchrun, or unset WORLD_SIZE and RANK.")
    if world > 1 and not (env.get("MASTER_ADDR") and env.get("MASTER_PORT")):
        raise ScenarioError(f"WORLD_SIZE={world} is set but MASTER_ADDR and MASTER_PORT are not, so this is not a "
                            f"torchrun process; start it with `torchrun --nproc-per-node {world} -m ibtui …`, or unset "
                            f"WORLD_SIZE and RANK.")


def overrides(settings: Mapping[str, Any] | None) -> list[str]:
    """A dict of settings as the CLI's `--set key=value` texts, so the errors match: each key checked as a dotted
    name and each value spelled as a TOML literal before it becomes text (nothing of a key or value is spliced
    into TOML); a nested dict ({"run": {"seeds": 2}}) is its dotted keys. ScenarioError for anything else."""
    import numbers

    from ibtui.scenario import _toml_value, check_key

    if settings is None:
        return []
    if not isinstance(settings, Mapping):
        raise ScenarioError(f"set={_short(settings)}: give the settings as a dict of dotted names to values, e.g. "
                            f"set={{'run.seeds': 5}}.")

    def literal(value, dotted):
        if isinstance(value, (bool, str)):
            return value
        if isinstance(value, numbers.Integral):
            return int(value)
        if isinstance(value, numbers.Real):
            return float(value)
        if isinstance(value, (list, tuple)):
            return [literal(v, dotted) for v in value]
        raise ScenarioError(f"--set {dotted}={_short(value)}: {type(value).__name__} is not a setting's value; give "
                            f"a number, true or false, a text or a list of them.")

    out: list[str] = []

    def add(prefix: str, mapping: Mapping, depth: int = 0) -> None:
        for key, value in mapping.items():
            dotted = f"{prefix}{key}" if isinstance(key, str) else f"{prefix}{_short(key)}"
            check_key(dotted, f"{dotted}={_short(value)}")
            if isinstance(value, Mapping) and depth < 8:
                add(dotted + ".", value, depth + 1)
            else:
                out.append(f"{dotted}={_toml_value(literal(value, dotted))}")

    add("", settings)
    return out


def _short(value: Any) -> str:
    """A Python value as a message shows it: its repr, one line, at most 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


def _path_arg(value: Any, what: str, optional: bool = True) -> None:
    """A path argument of the API: a str or os.PathLike (None where optional), else the one sentence."""
    import os

    if (value is None and optional) or isinstance(value, (str, os.PathLike)):
        return
    raise IbtuiError(f"{what}={_short(value)}: give a file path (a str or pathlib.Path), not "
                     f"{type(value).__name__}.")


def prepare(scenario: str | Path, set_: list[str] = (), device: str | None = None, data_dir: str | Path | None = None,
            export: str | Path | None = None, overwrite: bool = False, threads: int = 0, fps: float = 3.0,
            rank: int | None = None):
    """Every check that needs no torch, before any engine work: the validated Scenario, or an IbtuiError."""
    from ibtui.scenario import load_scenario, with_changes
    from ibtui.sinks.csv import check_targets

    sc = load_scenario(scenario, list(set_))
    if device is not None:
        sc = with_changes(sc, {"run.device": device}, origin="--device")
    if data_dir is not None:
        sc = with_changes(sc, {"data.dir": str(data_dir)}, origin="--data-dir")
    check_numbers(threads, fps)
    check_torchrun_env()
    if export is not None:
        check_targets(Path(export), overwrite, rank, inputs=tuple(p for p in (Path(scenario),) if p.is_file()))
    return sc


def build(sc, scenario: str | Path, export: str | Path | None, device: str | None, threads: int, overwrite: bool,
          say=None, ctx=None, resume: dict | None = None):
    """Import torch, check the device and memory, build the engine (data, model), the CSV sink and the
    checkpoints: what the app's worker runs (`say` reports each stage) and the headless path runs first. With
    `resume` (a checkpoint), the engine continues from it and the CSV is cut back to it. Raises IbtuiError."""
    import torch

    from ibtui.engine.device import resolve_device
    from ibtui.engine.sweep import SweepRunner
    from ibtui.resources import check_memory, is_out_of_memory
    from ibtui.scenario import sweep_point, to_dict, to_toml
    from ibtui.sinks.csv import CsvSink, rank_path

    try:
        try:
            resolve_device(sc.run.device, "--device" if device is not None else "run.device")
        except IbtuiError as exc:  # "--device = 'cuda' but …" reads better as "--device cuda: …"
            raise IbtuiError(str(exc).replace(f"--device = {sc.run.device.strip().lower()!r}", f"--device {device}", 1))
        if ctx is not None and ctx.active and resume is None:  # torchrun: this process trains its block of seeds
            # (a checkpoint's scenario is already this rank's block)
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
        if resume is not None:  # checked against this engine before anything is set (checkpoint.check_state)
            from ibtui.engine import checkpoint

            try:
                engine.load_state_dict(resume["runner"])
            except checkpoint.Bad as bad:
                raise checkpoint.refusal(resume.get("path", "the checkpoint"), bad) from None
    except (MemoryError, RuntimeError) as exc:
        if not is_out_of_memory(exc):
            raise
        raise IbtuiError(f"out of memory while setting up the run ({first_line(exc)}); {OOM_HINT}")
    sinks = []
    csv_sink = None
    if export is not None:
        from ibtui.sinks.checkpoint import CheckpointSink

        export = Path(export)
        target = rank_path(export, ctx.rank) if ctx is not None and ctx.active else export
        try:
            if resume is not None:
                from ibtui.sinks.runs import read_records

                csv_sink = CsvSink.resume(target, resume["csv_bytes"], resume["rows"], resume["last_epoch"],
                                          resume["epoch"])
                engine.current.replayed = read_records(target)  # for the app and the sweep report (Sink.replay)
            else:
                csv_sink = CsvSink(target, to_dict(sc), to_toml(sc), {"device": engine.info.device},
                                   overwrite=overwrite)
        except FileExistsError:
            raise IbtuiError(f"--export {export}: {target} appeared since the start (another run?); it is kept: pass "
                             f"--overwrite to replace it, or pick another path.")
        except OSError as exc:
            raise IbtuiError(f"--export {export}: cannot write {exc.filename or target} ({exc.strerror or exc}); "
                             f"pick another path.")
        sinks.append(csv_sink)
        if sc.run.checkpoint_every > 0:  # after the CSV sink: a checkpoint covers the rows already written
            sinks.append(CheckpointSink(engine, csv_sink, sc.run.checkpoint_every, to_toml(sc)))
    return engine, sinks, csv_sink


def execute(engine, sinks: list, quiet: bool, csv_sink=None, progress_every: float = 15.0, controls=None) -> bool:
    """Run the engine to its end into the sinks (and a progress bar unless `quiet`); closes them. An interrupt
    closes them unfinished (the CSV valid) and propagates; out of memory or a failing export disk closes them
    the same way and raises the IbtuiError the CLI prints. `controls.stop` ends the run at an epoch boundary (the
    CLI sets it on a signal). Returns whether every epoch ran."""
    from ibtui.controls import Controls
    from ibtui.records import Fanout
    from ibtui.resources import is_out_of_memory
    from ibtui.sinks.progress import ProgressSink

    sink = Fanout([*sinks, *([] if quiet else [ProgressSink(every=progress_every)])])
    try:
        finished = engine.run(sink, controls or Controls())
    except KeyboardInterrupt:
        sink.close(False)
        raise
    except (MemoryError, RuntimeError, OSError) as exc:
        if is_out_of_memory(exc):  # like an interrupt: the CSV keeps every finished snapshot, the sidecar says unfinished
            sink.close(False)
            raise IbtuiError(f"out of memory at epoch {engine.epoch} ({first_line(exc)}){kept(csv_sink)}; {OOM_HINT}")
        if not isinstance(exc, OSError):
            raise
        try:  # the export's disk filled up or went away: keep what is on disk, say so
            sink.close(False)
        except OSError:
            pass
        raise IbtuiError(f"cannot write the export at epoch {engine.epoch} ({exc.strerror or exc}){kept(csv_sink)}; "
                         f"free some space or export elsewhere.")
    sink.close(finished)
    return finished


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0][:200] if text else type(exc).__name__).rstrip(".")


def kept(csv_sink) -> str:
    """What the export holds after a run that stopped early (for the one-sentence message)."""
    if csv_sink is None:
        return ""
    if not csv_sink.replaced:
        return f"; no snapshot was finished, so {csv_sink.path} was left as it was"
    if csv_sink.last_epoch is None:
        return f"; {csv_sink.path} holds no snapshot yet"
    from ibtui.records import epoch_text

    return f"; {csv_sink.path} holds every snapshot up to epoch {epoch_text(csv_sink.last_epoch)}"


def run(scenario: str | Path, set: Mapping[str, Any] | None = None, export: str | Path | None = None,  # noqa: A002
        progress: bool = False, overwrite: bool = False, device: str | None = None, threads: int = 0,
        data_dir: str | Path | None = None) -> "Run":
    """Train a bundled scenario (by name) or a scenario file to the end and return its records as a Run.

    `set` overrides settings as `--set` does ({"run.seeds": 5, "run.epochs": 300}); `export` writes the CSV and
    its sidecar there (kept), else the records go to a temporary folder that is removed once read. Bad input
    raises the IbtuiError the CLI prints; the scenario's warnings are Python warnings. A sweep scenario runs
    every point (its fitted trend is the CLI's `SweepReport`; the Run holds every point's records)."""
    import warnings

    from ibtui.scenario import scenario_warnings

    _path_arg(scenario, "scenario", optional=False)
    _path_arg(export, "export")
    _path_arg(data_dir, "data_dir")
    if device is not None and not isinstance(device, str):
        raise IbtuiError(f"device={_short(device)}: give auto, cpu, cuda or cuda:N as a str.")
    sc = prepare(scenario, overrides(set), device, data_dir, export, overwrite, threads)
    for note in scenario_warnings(sc):
        warnings.warn(note, UserWarning, stacklevel=2)
    with tempfile.TemporaryDirectory(prefix="ibtui-run-") as tmp:
        target = Path(export) if export is not None else Path(tmp) / f"{Path(str(scenario)).stem or 'run'}.csv"
        engine, sinks, csv_sink = build(sc, scenario, target, device, threads, overwrite or export is None)
        execute(engine, sinks, quiet=not progress, csv_sink=csv_sink)
        return load(target)
