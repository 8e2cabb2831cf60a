"""One number per record: the unit every sink consumes, and the sink contract.

A record is `(run, sweep, seed, epoch, step, layer, quantity, estimator, value)`. `sweep` is "" or
"setting=value" for one point of a sweep; `seed` is an int or "mean"; `layer` is "" (whole network),
"3" (layer 3, 1-based, the output layer counts) or "2-3" (the pair 2→3). MI values are in bits.
The CSV export is exactly these records.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

FIELDS = ("run", "sweep", "seed", "epoch", "step", "layer", "quantity", "estimator", "value")


@dataclass(frozen=True, slots=True)
class Record:
    run: str
    seed: int | str
    epoch: int
    step: int
    layer: str
    quantity: str
    estimator: str
    value: float
    sweep: str = ""


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


class Sink:
    """Anything that consumes a run's records. Every hook has a do-nothing default; override what you need.

    Order: `start(info)` once before the first record, `emit(records)` once per snapshot with all its records,
    `progress(...)` after each training epoch (must be cheap), `close(finished)` once at the end.
    """

    def start(self, info: RunInfo) -> None:
        pass

    def emit(self, records: list[Record]) -> None:
        pass

    def progress(self, epoch: int, total: int, seed_epochs_per_s: float, noise_beta: float) -> None:
        pass

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

    def progress(self, epoch: int, total: int, seed_epochs_per_s: float, noise_beta: float) -> None:
        for sink in self.sinks:
            sink.progress(epoch, total, seed_epochs_per_s, noise_beta)

    def close(self, finished: bool) -> None:
        for sink in self.sinks:
            sink.close(finished)
