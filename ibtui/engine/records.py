"""One number per record: the unit every sink consumes (DESIGN.md, "Data flow").

A record is `(run, sweep, seed, epoch, step, layer, quantity, estimator, value)`. `sweep` is "" or
"setting=value" for one point of a sweep; `seed` is an int or "mean"; `layer` is "" (whole network),
"3" (layer 3, 1-based, the output layer counts) or "2-3" (the pair 2→3). MI values are in bits.
The CSV export is exactly these records.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Protocol

FIELDS = ("run", "sweep", "seed", "epoch", "step", "layer", "quantity", "estimator", "value")

# Quantity names used across the engine, the export and the TUI. One place, so they cannot drift.
MI_XT = "I(X;T)"
MI_TY = "I(T;Y)"
MI_XT_SE = "I(X;T)_se"  # Monte Carlo standard error of an MI estimate, where one exists
MI_TY_SE = "I(T;Y)_se"
LOSS_TRAIN = "loss_train"
LOSS_TEST = "loss_test"
ACC_TRAIN = "acc_train"
ACC_TEST = "acc_test"
NOISE_BETA = "noise_beta"  # recorded when the noise level changes (and at epoch 0)
SEED_DIVERGED = "diverged"  # 1.0 at the epoch a seed's loss became NaN/inf; the seed stops there


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


class Sink(Protocol):
    """Anything that consumes records. `emit` is called once per snapshot with all its records."""

    def emit(self, records: list[Record]) -> None: ...

    def close(self, finished: bool) -> None: ...


def layer_label(layer: int | tuple[int, int] | None) -> str:
    """The export's spelling of a layer: None → "", 3 → "3", (2, 3) → "2-3"."""
    if layer is None:
        return ""
    if isinstance(layer, tuple):
        return f"{layer[0]}-{layer[1]}"
    return str(layer)


def emit_all(sinks: Iterable[Sink], records: list[Record]) -> None:
    for sink in sinks:
        sink.emit(records)


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


# A sink may also implement, optionally:
#   start(info: RunInfo) -> None            before the first record
#   progress(epoch: int, total: int, seed_epochs_per_s: float, noise_beta: float) -> None   after each epoch (cheap!)
