"""The TUI's sink: the only object the engine thread and the app share (tui.md §2, DESIGN.md "Data flow").

The engine thread calls `start`, `emit`, `progress` and `close`; each stores numbers under a lock and
bumps a version counter, and never touches Textual. The app polls `version` on its own timer and,
when it changed, takes a `StateView` (an immutable view, see `Series`) to draw from. Series are kept per
(quantity, estimator, layer, seed) as (epoch, value) lists, bounded by thinning the oldest points, so a
long run cannot grow the memory or the redraw cost without limit.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

from ibtui.records import Record, RunInfo, Sink
from ibtui.quantities import NOISE_BETA, SEED_DIVERGED

SeriesKey = tuple[str, str, str, "int | str"]  # (quantity, estimator, layer, seed)


class Series:
    """One (epoch, value) series as it was when the view was taken: a prefix of the state's lists.

    The state only appends to its lists (thinning swaps in new lists), so the first `n` items never
    change under a reader; nothing is copied until a pane asks for `epochs` or `values`.
    """

    __slots__ = ("_xs", "_ys", "_n", "_epochs", "_values")

    def __init__(self, xs, ys, n: int | None = None):
        self._xs, self._ys = xs, ys
        self._n = len(xs) if n is None else n
        self._epochs = self._values = None

    @property
    def epochs(self) -> tuple[int, ...]:
        if self._epochs is None:
            self._epochs = tuple(self._xs[:self._n])
        return self._epochs

    @property
    def values(self) -> tuple[float, ...]:
        if self._values is None:
            self._values = tuple(self._ys[:self._n])
        return self._values

    def __len__(self) -> int:
        return self._n

    def last(self) -> tuple[int, float] | None:
        return (self._xs[self._n - 1], self._ys[self._n - 1]) if self._n else None


EMPTY = Series((), ())


@dataclass(frozen=True)
class StateView:
    """An immutable copy of the state, taken on the UI thread; panes draw only from this."""

    version: int
    data_version: int
    info: RunInfo | None
    epoch: int  # last epoch reported (progress or records)
    total: int | None
    rate: float  # seed-epochs/s, nan when unknown
    beta: float | None  # current noise level as the engine reported it
    finished: bool | None  # None while running; True finished all epochs; False stopped early
    error: str | None
    snapshots: int  # distinct epochs that carried measured records
    series: dict = field(default_factory=dict)  # SeriesKey -> Series
    index: dict = field(default_factory=dict)  # quantity -> [SeriesKey], in arrival order
    quantities: frozenset = frozenset()
    noise_events: tuple[tuple[int, float], ...] = ()  # (epoch, beta) each time the level changed
    diverged: tuple[tuple[int | str, int], ...] = ()  # (seed, epoch)
    warnings: tuple[str, ...] = ()  # Python warnings raised while the app ran (shown as notices)
    started: float = 0.0  # time.monotonic() of start()
    sweep: str = ""  # the sweep point shown ("" when the run is not a sweep)
    other_sweeps: tuple[str, ...] = ()  # sweep points whose records arrived but are not shown

    # ------------------------------------------------------------------ lookups used by the panes
    def get(self, quantity: str, estimator: str = "", layer: str = "", seed: int | str = "mean") -> Series:
        return self.series.get((quantity, estimator, layer, seed), EMPTY)

    def has(self, quantity: str) -> bool:
        return quantity in self.quantities

    def keys_of(self, quantity: str) -> list[SeriesKey]:
        return self.index.get(quantity, [])

    def estimators_of(self, quantity: str) -> list[str]:
        return sorted({k[1] for k in self.keys_of(quantity)})

    def layers(self) -> list[str]:
        """Layer labels: from the run info, else the single layers seen in MI records, in numeric order."""
        if self.info is not None and self.info.layers:
            return list(self.info.layers)
        seen = {k[2] for q in ("I(X;T)", "I(T;Y)") for k in self.keys_of(q)}
        return sorted(seen, key=_layer_sort_key)

    def seeds(self) -> list[int]:
        if self.info is not None and self.info.seeds:
            return list(self.info.seeds)
        return sorted({k[3] for keys in self.index.values() for k in keys if isinstance(k[3], int)})

    def estimators(self) -> list[str]:
        """MI estimators the user can cycle through: the run info's, else those seen in MI records."""
        if self.info is not None and self.info.estimators:
            return list(self.info.estimators)
        return sorted({k[1] for q in ("I(X;T)", "I(T;Y)") for k in self.keys_of(q) if k[1]})

    def pending_measure(self, present: bool) -> str | None:
        """The sentence a pane shows instead of a plot: None when it has data."""
        if present:
            return None
        if self.snapshots >= 2 or (self.finished is not None and self.snapshots >= 1):
            return "not measured in this run"
        return "measure not available yet (waiting for the first snapshots)"


def _layer_sort_key(label: str):
    parts = label.split("-")
    try:
        return tuple(int(p) for p in parts)
    except ValueError:
        return (math.inf,)


class TuiState(Sink):
    """Lock-protected store of everything the app shows. Implements the sink protocol (records.py)."""

    def __init__(self, max_points: int = 1024):
        if max_points < 4:
            raise ValueError("max_points must be at least 4")
        self.max_points = max_points
        self._lock = threading.Lock()
        self.version = 0  # any change (progress included): the status line redraws
        self.data_version = 0  # new records or run info: the plots redraw
        self._info: RunInfo | None = None
        self._sweep: str | None = None  # the sweep point shown ("" = not a sweep); fixed by the first run
        self._other_sweeps: set[str] = set()
        self._reset()
        self._total: int | None = None
        self._rate = math.nan
        self._beta: float | None = None
        self._finished: bool | None = None
        self._error: str | None = None
        self.error_detail = ""  # the engine's traceback, printed after the app closes
        self._warnings: list[str] = []
        self._started = time.monotonic()
        self._cache: tuple[int, dict, dict] | None = None
        self.closed_with: list[bool] = []  # every close(finished) received, for tests

    def _reset(self) -> None:
        self._epochs: dict[SeriesKey, list[int]] = {}
        self._values: dict[SeriesKey, list[float]] = {}
        self._index: dict[str, list[SeriesKey]] = {}  # quantity -> its keys, in arrival order
        self._snapshot_epochs: set[int] = set()
        self._noise: list[tuple[int, float]] = []
        self._diverged: list[tuple[int | str, int]] = []
        self._epoch = 0
        self._dirty: set = set()  # keys changed since the last view
        self._dirty_all = True  # after a reset: rebuild every series

    # ------------------------------------------------------------------ sink protocol (engine thread)
    def start(self, info: RunInfo) -> None:
        """A run begins. A new sweep point (info.sweep differs) starts from empty series."""
        with self._lock:
            sweep = getattr(info, "sweep", "")
            if self._sweep is not None and sweep != self._sweep:
                self._reset()
            self._sweep = sweep
            self._info = info
            self._total = info.epochs
            self._started = time.monotonic()
            self._bump(data=True)

    def emit(self, records: list[Record]) -> None:
        with self._lock:
            for r in records:
                sweep = getattr(r, "sweep", "")
                if self._sweep is None:
                    self._sweep = sweep
                if sweep != self._sweep:  # another sweep point's records (a sweep's CSV): not mixed in
                    self._other_sweeps.add(sweep)
                    continue
                if r.quantity == NOISE_BETA:
                    if not self._noise or self._noise[-1][1] != r.value:
                        self._noise.append((r.epoch, r.value))
                    self._beta = r.value
                elif r.quantity == SEED_DIVERGED:
                    self._diverged.append((r.seed, r.epoch))
                else:
                    self._snapshot_epochs.add(r.epoch)
                key = (r.quantity, r.estimator, r.layer, r.seed)
                xs = self._epochs.get(key)
                if xs is None:
                    xs = self._epochs[key] = []
                    self._values[key] = []
                    self._index.setdefault(r.quantity, []).append(key)
                ys = self._values[key]
                self._dirty.add(key)
                if xs and xs[-1] == r.epoch:  # the same epoch again (a re-read or a correction): replace
                    ys[-1] = r.value
                else:
                    xs.append(r.epoch)
                    ys.append(r.value)
                    if len(xs) > self.max_points:  # new lists: views holding the old ones stay valid
                        self._epochs[key], self._values[key] = _thin(xs), _thin(ys)
                if r.epoch > self._epoch:
                    self._epoch = r.epoch
            self._bump(data=True)

    def progress(self, epoch: int, total: int, seed_epochs_per_s: float, noise_beta: float) -> None:
        with self._lock:  # cheap: called after every epoch
            self._epoch = max(self._epoch, epoch)
            self._total = total
            self._rate = seed_epochs_per_s
            if noise_beta is not None and math.isfinite(noise_beta):  # a replay does not know β: keep the records'
                self._beta = noise_beta
            self.version += 1

    def close(self, finished: bool) -> None:
        with self._lock:
            self.closed_with.append(bool(finished))
            if self._finished is None:
                self._finished = bool(finished)
            self.version += 1

    # ------------------------------------------------------------------ app side
    def fail(self, message: str, detail: str = "") -> None:
        """Record that the engine raised; the status line shows it."""
        with self._lock:
            self._error = message
            self.error_detail = self.error_detail or detail
            self.version += 1

    def warn(self, message: str) -> None:
        """Record a warning (from any thread); the app shows it as a notice, never on stderr."""
        with self._lock:
            if message not in self._warnings:
                self._warnings.append(message)
                self.version += 1

    @property
    def info(self) -> RunInfo | None:
        with self._lock:
            return self._info

    def view(self) -> StateView:
        """An immutable view. Cheap: the series are shared prefixes of the state's lists (see Series),
        rebuilt only for the keys that received records since the last call."""
        with self._lock:
            if self._cache is None or self._cache[0] != self.data_version:
                if self._cache is None or self._dirty_all:
                    series, dirty = {}, self._epochs.keys()
                else:
                    series, dirty = dict(self._cache[1]), self._dirty
                for k in dirty:
                    series[k] = Series(self._epochs[k], self._values[k])
                index = {q: list(keys) for q, keys in self._index.items()}
                self._cache = (self.data_version, series, index)
                self._dirty = set()
                self._dirty_all = False
            return StateView(
                version=self.version, data_version=self.data_version, info=self._info, epoch=self._epoch,
                total=self._total, rate=self._rate, beta=self._beta, finished=self._finished,
                error=self._error, snapshots=len(self._snapshot_epochs), series=self._cache[1], index=self._cache[2],
                quantities=frozenset(self._index), noise_events=tuple(self._noise),
                diverged=tuple(self._diverged), warnings=tuple(self._warnings), started=self._started,
                sweep=self._sweep or "", other_sweeps=tuple(sorted(self._other_sweeps)))

    def _bump(self, data: bool) -> None:
        self.version += 1
        if data:
            self.data_version += 1


def _thin(xs: list) -> list:
    """Every other point, plus the last one: a series halved, first and newest points kept."""
    return xs[:-1:2] + [xs[-1]]


DYNAMICS_QUANTITIES = ("snr", "grad_mean", "grad_std", "weight_change", "weight_norm")


@dataclass(frozen=True)
class ViewState:
    """What the user chose to see (keys e, l, s, d, 1-4); UI thread only, replaced on every change."""

    estimator: str | None = None  # displayed MI estimator; None = the run's first
    layer: str | None = None  # None = all layers
    per_seed: bool = False  # False: mean over seeds; True: mean plus every seed
    page: int = 1  # compact layout: 1 plane, 2 dynamics, 3 clusters + bound, 4 loss
    dynamics: str = DYNAMICS_QUANTITIES[0]
