"""One number per record: the unit every sink consumes, and the sink contract.

A record is `(run, sweep, seed, epoch, step, layer, quantity, estimator, value)`. `sweep` is "" or
"setting=value" for one point of a sweep; `seed` is an int or "mean"; `layer` is "" (whole network),
"3" (layer 3, 1-based, the output layer counts) or "2-3" (the pair 2→3). MI values are in bits.
The CSV export is exactly these records.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import median
from typing import Iterable

FIELDS = ("run", "sweep", "seed", "epoch", "step", "layer", "quantity", "estimator", "value")


@dataclass(frozen=True, slots=True)
class Record:
    run: str
    seed: int | str
    epoch: int | float  # a float only for a snapshot inside an epoch (epoch_at)
    step: int
    layer: str
    quantity: str
    estimator: str
    value: float
    sweep: str = ""


def epoch_at(step: int, steps_per_epoch: int) -> int | float:
    """The epoch of a snapshot after `step` optimiser steps: whole at an epoch's end (written as today), else
    step / steps_per_epoch, a snapshot inside an epoch (measure.snapshot_unit = "step"), so log-epoch axes and
    the transition detector keep working; the CSV writes it with repr, which `parse_epoch` reads back exactly."""
    return step // steps_per_epoch if step % steps_per_epoch == 0 else step / steps_per_epoch


def parse_epoch(text: str) -> int | float:
    """An epoch as the CSV holds it: an integer, or a finite fraction (ValueError otherwise)."""
    if text.lstrip("-").isdigit():
        return int(text)
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"epoch {text!r} is not a finite number")
    return value


def epoch_text(epoch: int | float) -> str:
    """An epoch for a person: whole epochs as they are, a fraction with 4 significant digits."""
    return f"{epoch:.4g}" if isinstance(epoch, float) else str(epoch)


@dataclass(frozen=True)
class RunInfo:
    """What a sink needs to know about a run before its first record (titles, axes, status line)."""

    run: str  # run name (the scenario's name)
    scenario_path: str
    device: str  # e.g. "cpu", "cuda:0 (NVIDIA H100)"
    seeds: tuple[int, ...]
    epochs: int
    layers: tuple[str, ...]  # layer labels in order, e.g. ("1", "2", ..., "6"); the last is the output
    layer_widths: tuple[int, ...]
    n_points: int  # number of points MI is measured on (log2 of it is the I(X;T) ceiling)
    mi_points: str  # "all", "train" or "test"
    estimators: tuple[str, ...]  # estimator labels as they appear in records, e.g. ("bin30", "kde_upper")
    estimator_settings: dict  # label -> one-line description of its settings, e.g. "30 bins on [-1, 1]"
    noise_levels: tuple[float, ...]  # β levels the user can cycle through; (0.0,) = deterministic net
    notes: tuple[str, ...] = ()  # warnings a researcher must see (biased split, H(T|X)=0 assumption, …)
    sweep: str = ""  # "setting=value" when this run is one point of a sweep
    snapshot_epochs: tuple[int | float, ...] = ()  # the epochs measured (engine/schedule.py), 0 and the last included
    sweep_points: tuple[str, ...] = ()  # every point of the sweep this run belongs to, in run order
    training_step: str = ""  # MLP: "compiled" or "pytorch", the step that trained (resume keeps it: they round apart)
    kde_path: str = ""  # KDE: the path of layers ≤ 512 wide (compiled, pytorch, attention, pairwise); resume keeps it
    # label -> the number of points an estimator measures on where it keeps fewer than n_points (matrix-Rényi and
    # KSG subsample: O(n³) and O(n²)); its own I(X;T) ceiling is log2 of that.
    estimator_points: dict[str, int] = field(default_factory=dict)

    def ceiling_points(self, estimator: str) -> int:
        """The number of points `estimator` measures on (log2 of it bounds its I(X;T))."""
        return int(self.estimator_points.get(estimator, self.n_points))


@dataclass(frozen=True)
class Progress:
    """Where a run stands after a training epoch: what a progress bar, a status line or an ETA needs.

    Times are seconds of this process's work on the run so far, split between training (`train_s` over
    `trained` epochs) and measuring snapshots (`measure_s` over `measured` snapshots, epoch 0 included),
    so the time left is estimated from the schedule, not from the early epochs (where a log-spaced
    schedule measures every epoch). A replay knows neither: both are 0 and the ETA is unknown.
    """

    epoch: int  # training epochs done
    total: int  # training epochs in the run
    seeds: int  # seeds still training
    noise_beta: float  # current noise level (nan when unknown, e.g. a replay)
    snapshots_done: int = 0  # snapshot epochs <= epoch
    snapshots_total: int = 0
    train_s: float = 0.0
    trained: int = 0
    measure_s: float = 0.0
    measured: int = 0
    # snapshots still being measured on the worker (in flight), and its mean seconds a snapshot
    measuring: int = 0
    measure_job_s: float = math.nan

    @property
    def seed_epochs_per_s(self) -> float:
        """Training speed: seeds × epochs per second of training time (nan until measured)."""
        return self.seeds * self.trained / self.train_s if self.train_s > 0 and self.trained else math.nan

    @property
    def eta_s(self) -> float:
        """Seconds left at the mean time an epoch and the mean time a snapshot so far."""
        if self.epoch >= self.total:
            return self.finishing_s
        if not (self.trained and self.train_s > 0):
            return math.nan
        return self.time_left(self.train_s / self.trained,
                              self.measure_s / self.measured if self.measured else math.nan)

    @property
    def finishing_s(self) -> float:
        """After the last epoch: the snapshots still being measured at the worker's mean time a snapshot."""
        if not self.measuring:
            return 0.0
        return self.measuring * self.measure_job_s if math.isfinite(self.measure_job_s) else math.nan

    def time_left(self, s_per_epoch: float, s_per_snapshot: float) -> float:
        """Epochs left at `s_per_epoch` plus snapshots left at `s_per_snapshot` (the training thread's share, nan:
        none measured yet), or, where the measuring worker has more left (the snapshots left and those in flight
        at its mean time a job), the worker's: the run ends when the slower of the two does."""
        left = (self.total - self.epoch) * s_per_epoch
        snaps = max(self.snapshots_total - self.snapshots_done, 0)
        train = left + snaps * s_per_snapshot if snaps and math.isfinite(s_per_snapshot) else left
        worker = (snaps + self.measuring) * self.measure_job_s if math.isfinite(self.measure_job_s) else 0.0
        return max(train, worker)


class EtaEstimator:
    """The time left, from successive `Progress` reports: the median of the last `window` training-epoch times
    and of the last snapshot times, so the first epochs' warm-up and a busy machine's spikes do not swing it
    (the running means in `Progress.eta_s` are the fallback before two reports). Feed every report to `update`."""

    def __init__(self, window: int = 31):
        self.window = window
        self._train: list[float] = []
        self._measure: list[float] = []
        self.last: Progress | None = None

    def update(self, p: Progress) -> None:
        last = self.last
        if last is None or p.trained < last.trained or p.measured < last.measured:  # a new run (sweep point)
            self._train, self._measure = [], []
            if p.measured and p.measure_s > 0:
                self._measure.append(p.measure_s / p.measured)
        else:
            if p.trained > last.trained:
                self._push(self._train, (p.train_s - last.train_s) / (p.trained - last.trained))
            if p.measured > last.measured:
                self._push(self._measure, (p.measure_s - last.measure_s) / (p.measured - last.measured))
        self.last = p

    def _push(self, xs: list[float], x: float) -> None:
        xs.append(x)
        if len(xs) > self.window:
            del xs[0]

    def eta_s(self) -> float:
        p = self.last
        if p is None:
            return math.nan
        if p.epoch >= p.total:
            return p.finishing_s
        if not self._train:
            return p.eta_s
        per_snapshot = (median(self._measure) if self._measure else
                        p.measure_s / p.measured if p.measured else math.nan)
        return p.time_left(median(self._train), per_snapshot)


class Sink:
    """Anything that consumes a run's records. Every hook has a do-nothing default; override what you need.

    Order: `start(info)` once before the first record, `emit(records)` once per snapshot with all its records,
    `progress(p)` after each training epoch with a `Progress` (must be cheap) and, after the last epoch, after each
    snapshot that finishes later (its `measuring` counts those left), `close(finished)` once at the end.
    """

    def start(self, info: RunInfo) -> None:
        pass

    def emit(self, records: list[Record]) -> None:
        pass

    def progress(self, p: Progress) -> None:
        pass

    def replay(self, records: list[Record]) -> None:
        """After `start` of a resumed run: the records already in the export. Sinks that show or summarise the
        whole run take them (the app, the sweep report); sinks that write them have them already."""

    def close(self, finished: bool) -> None:
        pass


class Fanout(Sink):
    """Several sinks as one: each call goes to every sink, in order."""

    def __init__(self, sinks: Iterable[Sink] = ()):
        self.sinks = list(sinks)

    def start(self, info: RunInfo) -> None:
        for sink in self.sinks:
            sink.start(info)

    def emit(self, records: list[Record]) -> None:
        for sink in self.sinks:
            sink.emit(records)

    def progress(self, p: Progress) -> None:
        for sink in self.sinks:
            sink.progress(p)

    def replay(self, records: list[Record]) -> None:
        for sink in self.sinks:
            sink.replay(records)

    def close(self, finished: bool) -> None:
        for sink in self.sinks:
            sink.close(finished)
