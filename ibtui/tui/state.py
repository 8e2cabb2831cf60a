"""The TUI's sink: the only object the engine thread and the app share.

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

from ibtui.records import EtaEstimator, Progress, Record, RunInfo, Sink
from ibtui.quantities import DYNAMICS_PER_LAYER, MI_TY, MI_XT, NOISE_BETA, SEED_DIVERGED

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
    other_sweeps: tuple[str, ...] = ()  # the other sweep points with records (v shows them)
    sweeps: tuple[str, ...] = ()  # every sweep point with records, in arrival order
    live_sweep: str = ""  # the point the engine is running now
    progress: Progress | None = None  # the latest progress report (of the live point)
    stage: str = ""  # what the engine is doing before its first snapshot ("loading torch…"); "" after
    eta_s: float = math.nan  # seconds left (records.EtaEstimator), nan when unknown
    runs: tuple = ()  # comparing runs (`ibtui view a.csv b.csv`): ((label, StateView), …); this view is the bright one

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
        """Layer labels: from the run info, else the single layers seen in MI records, in numeric order (comparing
        runs: every run's)."""
        if self.runs:
            return sorted({lay for _, v in self.runs for lay in v.layers()}, key=_layer_sort_key)
        if self.info is not None and self.info.layers:
            return list(self.info.layers)
        seen = {k[2] for q in (MI_XT, MI_TY) for k in self.keys_of(q)}
        return sorted(seen, key=_layer_sort_key)

    def seeds(self) -> list[int]:
        if self.info is not None and self.info.seeds:
            return list(self.info.seeds)
        return sorted({k[3] for keys in self.index.values() for k in keys if isinstance(k[3], int)})

    def estimators(self) -> list[str]:
        """MI estimators the user can cycle through: the run info's, else those seen in MI records (comparing runs:
        every run's, in order)."""
        if self.runs:
            return list(dict.fromkeys(e for _, v in self.runs for e in v.estimators()))
        if self.info is not None and self.info.estimators:
            return list(self.info.estimators)
        return sorted({k[1] for q in (MI_XT, MI_TY) for k in self.keys_of(q) if k[1]})

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


class _Point:
    """Everything stored for one sweep point (a run that is not a sweep has one, labelled "")."""

    def __init__(self):
        self.epochs: dict[SeriesKey, list[int]] = {}
        self.values: dict[SeriesKey, list[float]] = {}
        self.index: dict[str, list[SeriesKey]] = {}  # quantity -> its keys, in arrival order
        self.snapshot_epochs: set[int] = set()
        self.noise: list[tuple[int, float]] = []
        self.diverged: list[tuple[int | str, int]] = []
        self.epoch = 0
        self.beta: float | None = None
        self.info: RunInfo | None = None
        self.progress: Progress | None = None
        self.eta = EtaEstimator()
        self.data_version = 0
        self.cache: tuple[int, dict, dict] | None = None
        self.dirty: set = set()  # keys changed since the last view of this point


class TuiState(Sink):
    """Lock-protected store of everything the app shows. Implements the sink protocol (records.py).

    A sweep keeps every point's series (records carry `sweep`); a view shows one point, by default the
    one the engine is running."""

    def __init__(self, max_points: int = 1024):
        if max_points < 4:
            raise ValueError("max_points must be at least 4")
        self.max_points = max_points
        self._lock = threading.Lock()
        self.version = 0  # any change (progress included): the status line redraws
        self.data_version = 0  # new records or run info: the plots redraw
        self._info: RunInfo | None = None
        self._points: dict[str, _Point] = {}
        self._live: str | None = None  # the point the engine runs now
        self._total: int | None = None
        self._finished: bool | None = None
        self._error: str | None = None
        self._stage = ""
        self.error_detail = ""  # the engine's traceback, printed after the app closes
        self._warnings: list[str] = []
        self._started = time.monotonic()
        self.closed_with: list[bool] = []  # every close(finished) received, for tests

    def _point(self, sweep: str) -> _Point:
        p = self._points.get(sweep)
        if p is None:
            p = self._points[sweep] = _Point()
        return p

    # ------------------------------------------------------------------ sink protocol (engine thread)
    def start(self, info: RunInfo) -> None:
        """A run (or the next sweep point) begins; its series start empty, the earlier points' stay."""
        with self._lock:
            sweep = getattr(info, "sweep", "")
            self._live = sweep
            self._point(sweep).info = info
            self._info = info
            self._total = info.epochs
            self._started = time.monotonic()
            self._stage = "measuring epoch 0…" if not self._point(sweep).snapshot_epochs else ""
            self._bump(data=True)

    def set_stage(self, text: str) -> None:
        """What the engine is doing before its first snapshot (the status line shows it)."""
        with self._lock:
            self._stage = text
            self.version += 1

    def replay(self, records: list[Record]) -> None:
        self.emit(records)  # a resumed run's plane starts with what the export already holds

    def emit(self, records: list[Record]) -> None:
        with self._lock:
            touched = set()
            for r in records:
                sweep = getattr(r, "sweep", "")
                if self._live is None:
                    self._live = sweep
                pt = self._point(sweep)
                touched.add(sweep)
                if r.quantity == NOISE_BETA:
                    if not pt.noise or pt.noise[-1][1] != r.value:
                        pt.noise.append((r.epoch, r.value))
                    pt.beta = r.value
                elif r.quantity == SEED_DIVERGED:
                    pt.diverged.append((r.seed, r.epoch))
                else:
                    pt.snapshot_epochs.add(r.epoch)
                    self._stage = ""
                key = (r.quantity, r.estimator, r.layer, r.seed)
                xs = pt.epochs.get(key)
                if xs is None:
                    xs = pt.epochs[key] = []
                    pt.values[key] = []
                    pt.index.setdefault(r.quantity, []).append(key)
                ys = pt.values[key]
                pt.dirty.add(key)
                if xs and xs[-1] == r.epoch:  # the same epoch again (a re-read or a correction): replace
                    ys[-1] = r.value
                else:
                    xs.append(r.epoch)
                    ys.append(r.value)
                    if len(xs) > self.max_points:  # new lists: views holding the old ones stay valid
                        pt.epochs[key], pt.values[key] = _thin(xs), _thin(ys)
                if r.epoch > pt.epoch:
                    pt.epoch = r.epoch
            self._bump(data=True)
            for sweep in touched:
                self._points[sweep].data_version = self.data_version

    def progress(self, p: Progress) -> None:
        with self._lock:  # cheap: called after every epoch
            pt = self._point(self._live or "")
            pt.epoch = max(pt.epoch, p.epoch)
            pt.progress = p
            pt.eta.update(p)
            self._total = p.total
            if p.noise_beta is not None and math.isfinite(p.noise_beta):  # a replay does not know β
                pt.beta = p.noise_beta
            self.version += 1

    def close(self, finished: bool) -> None:
        with self._lock:
            self.closed_with.append(bool(finished))
            if self._finished is None:
                self._finished = bool(finished)
            self._stage = ""
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

    def sweeps(self) -> list[str]:
        with self._lock:
            return list(self._points)

    def view(self, sweep: str | None = None) -> StateView:
        """An immutable view of one sweep point (None: the live one). Cheap: the series are shared prefixes
        of the state's lists (see Series), rebuilt only for the keys that received records since the last call."""
        with self._lock:
            live = self._live if self._live is not None else ""
            shown = sweep if sweep in self._points else live
            pt = self._points.get(shown) or _Point()
            if pt.cache is None or pt.cache[0] != pt.data_version:
                if pt.cache is None:
                    series, dirty = {}, pt.epochs.keys()
                else:
                    series, dirty = dict(pt.cache[1]), pt.dirty
                for k in dirty:
                    series[k] = Series(pt.epochs[k], pt.values[k])
                index = {q: list(keys) for q, keys in pt.index.items()}
                pt.cache = (pt.data_version, series, index)
                pt.dirty = set()
            info = pt.info or self._info
            is_live = shown == live
            total = (pt.progress.total if pt.progress else None) or (info.epochs if info else None) or (
                self._total if is_live else None)
            prog = pt.progress
            return StateView(
                version=self.version, data_version=pt.data_version, info=info, epoch=pt.epoch,
                total=total, rate=prog.seed_epochs_per_s if prog is not None else math.nan, beta=pt.beta,
                finished=self._finished if is_live else True, error=self._error,
                snapshots=len(pt.snapshot_epochs), series=pt.cache[1], index=pt.cache[2],
                quantities=frozenset(pt.index), noise_events=tuple(pt.noise),
                diverged=tuple(pt.diverged), warnings=tuple(self._warnings), started=self._started,
                sweep=shown, other_sweeps=tuple(s for s in self._points if s != shown),
                sweeps=tuple(self._points), live_sweep=live, progress=prog, stage=self._stage,
                eta_s=pt.eta.eta_s())

    def _bump(self, data: bool) -> None:
        self.version += 1
        if data:
            self.data_version += 1


def _thin(xs: list) -> list:
    """Every other point, plus the last one: a series halved, first and newest points kept."""
    return xs[:-1:2] + [xs[-1]]


DYNAMICS_QUANTITIES = DYNAMICS_PER_LAYER  # the `d` cycle, from the registry


@dataclass(frozen=True)
class ViewState:
    """What the user chose to see (keys e, l, s, d, 1-4); UI thread only, replaced on every change."""

    estimator: str | None = None  # displayed MI estimator; None = the run's first
    layer: str | None = None  # None = all layers
    per_seed: bool = False  # False: mean over seeds; True: mean plus every seed
    page: int = 1  # compact layout: 1 plane, 2 dynamics, 3 clusters + bound, 4 loss
    dynamics: str = DYNAMICS_QUANTITIES[0]
    sweep: str | None = None  # the sweep point shown (v cycles); None = the one running; comparing runs: the bright
    # run (r cycles)
