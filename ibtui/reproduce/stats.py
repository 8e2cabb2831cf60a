"""Numbers a verdict reads, each with a 95 % bootstrap interval, and the falls after a peak.

The bootstrap resamples the units a number is made of (seeds for a mean or a fall; batch sizes or depths for a
fit) with replacement, B ≥ 1000 times, and takes the 2.5 and 97.5 percentiles (Efron & Tibshirani 1993, the
percentile interval). A rule is met only at the conservative end of the interval ("within noise" otherwise).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

B = 2000          # resamples (the issue asks ≥ 1000)
LEVEL = 0.95
SEED = 20190      # a fixed generator: the report is the same every time it is written


@dataclass(frozen=True)
class Est:
    """A point estimate with its interval; lo/hi are NaN when it cannot be resampled (n < 2)."""

    value: float
    lo: float
    hi: float
    n: int

    def at_least(self, thr: float) -> bool | None:
        """True if even the low end is ≥ thr, False if the point estimate is below, None (within noise) if the point
        meets it and the interval's low end does not."""
        if not math.isfinite(self.value):
            return False
        if not (math.isfinite(self.lo) and math.isfinite(self.hi)):
            return None if self.value >= thr else False
        if self.lo >= thr:
            return True
        return False if self.value < thr else None

    def at_most(self, thr: float) -> bool | None:
        """True if even the high end is ≤ thr, False if the point estimate is above, None (within noise) if the
        point meets it and the interval's high end does not."""
        if not math.isfinite(self.value):
            return False
        if not (math.isfinite(self.lo) and math.isfinite(self.hi)):
            return None if self.value <= thr else False
        if self.hi <= thr:
            return True
        return False if self.value > thr else None

    def fmt(self, nd: int = 2) -> str:
        if not math.isfinite(self.value):
            return "–"
        if not (math.isfinite(self.lo) and math.isfinite(self.hi)):
            return f"{self.value:.{nd}f} (n={self.n}, no interval)"
        return f"{self.value:.{nd}f} [{self.lo:.{nd}f}, {self.hi:.{nd}f}]"


def bootstrap(units: Sequence, stat: Callable[[list], float], b: int = B, seed: int = SEED,
              level: float = LEVEL, vec: Callable[[np.ndarray], np.ndarray] | None = None) -> Est:
    """Percentile interval of stat(units) over b resamples of the units with replacement.

    Resamples where stat is not finite (e.g. a correlation of constant values) are dropped; fewer than half
    finite gives no interval. `vec`, when given, computes stat of every resample at once from the (b, n) array
    of resampled units (the same numbers, faster)."""
    units = list(units)
    n = len(units)
    try:
        value = float(stat(units)) if n else math.nan
    except (ValueError, ZeroDivisionError, FloatingPointError, np.linalg.LinAlgError):
        value = math.nan
    if n < 2 or not math.isfinite(value):
        return Est(value, math.nan, math.nan, n)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(b, n))
    vals = np.empty(b)
    with np.errstate(all="ignore"):
        if vec is not None:
            vals = np.asarray(vec(np.asarray(units)[idx]), dtype=float)
        for i in range(0 if vec is not None else b):
            try:
                vals[i] = stat([units[j] for j in idx[i]])
            except (ValueError, ZeroDivisionError, FloatingPointError, np.linalg.LinAlgError):
                vals[i] = math.nan
    ok = vals[np.isfinite(vals)]
    if len(ok) < b / 2:
        return Est(value, math.nan, math.nan, n)
    a = (1 - level) / 2
    return Est(value, float(np.quantile(ok, a)), float(np.quantile(ok, 1 - a)), n)


def _finite(vals) -> list[float]:
    return [float(v) for v in vals if v is not None and math.isfinite(v)]


def mean_ci(vals) -> Est:
    """Mean over seeds with its bootstrap interval (non-finite values left out)."""
    return bootstrap(_finite(vals), lambda u: float(np.mean(u)), vec=lambda a: a.mean(axis=1))


def corr(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
        return math.nan
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def corr_ci(x, y) -> Est:
    """Pearson r over (x, y) points, resampling the points."""
    pts = [(a, b) for a, b in zip(x, y) if math.isfinite(a) and math.isfinite(b)]
    return bootstrap(pts, lambda u: corr([p[0] for p in u], [p[1] for p in u]))


def slope(x, y) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2 or np.ptp(x) == 0:
        return math.nan
    return float(np.polyfit(x, y, 1)[0])


def slope_ci(x, y) -> Est:
    """Least-squares slope over (x, y) points, resampling the points (a resample with one distinct x is dropped)."""
    pts = [(a, b) for a, b in zip(x, y) if math.isfinite(a) and math.isfinite(b)]
    return bootstrap(pts, lambda u: slope([p[0] for p in u], [p[1] for p in u]))


def falls(e: np.ndarray, v: np.ndarray) -> dict:
    """A series' peak and the two falls after it: peak → lowest later value (`dip`) and peak → final (`drop`).

    `dip` sees a layer that falls and recovers; `drop` only a fall that lasts to the end of the run."""
    nan = math.nan
    if len(v) == 0 or not np.isfinite(v).any():
        return {"peak": nan, "peak_epoch": nan, "start": nan, "final": nan, "drop": nan, "rise": nan,
                "dip": nan, "low": nan, "low_epoch": nan}
    i = int(np.nanargmax(v))
    later = v[i:]
    j = i + int(np.nanargmin(later))
    fin = v[np.isfinite(v)][-1]
    return {"peak": float(v[i]), "peak_epoch": float(e[i]), "start": float(v[0]), "final": float(fin),
            "drop": float(v[i] - fin), "rise": float(v[i] - v[0]), "dip": float(v[i] - v[j]),
            "low": float(v[j]), "low_epoch": float(e[j])}


def f2(x, nd=2) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.{nd}f}"


def g3(x) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.3g}"


def mean_sd(vals) -> tuple[float, float, int]:
    v = np.array(_finite(vals), dtype=float)
    if len(v) == 0:
        return math.nan, math.nan, 0
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan, len(v)


def ms(vals, nd=3) -> str:
    m, sd, n = mean_sd(vals)
    if n == 0:
        return "–"
    return f"{m:.{nd}g} ± {sd:.2g} (n={n})" if np.isfinite(sd) else f"{m:.{nd}g} (n={n})"


def verdict3(met: Sequence[bool | None], partial_ok: bool = True) -> str:
    """reproduced when every check holds at the interval's conservative end; within noise when none fails but
    some only hold at the point estimate; partially when some hold and some fail; not reproduced otherwise."""
    if all(m is True for m in met):
        return "reproduced"
    if any(m is False for m in met):
        return "partially" if partial_ok and any(m is True for m in met) else "not reproduced"
    return "within noise"


def combined_verdict(verdicts: Sequence[str]) -> str:
    """One row's verdict from its data sets' (MNIST and SZT): reproduced only if all are, not reproduced if
    none is, within noise if all are reproduced or within noise, partially otherwise."""
    if all(v == "reproduced" for v in verdicts):
        return "reproduced"
    if all(v == "not reproduced" for v in verdicts):
        return "not reproduced"
    return "within noise" if all(v in ("reproduced", "within noise") for v in verdicts) else "partially"
