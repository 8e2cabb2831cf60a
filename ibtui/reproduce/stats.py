"""Numbers a verdict reads, each with a 95 % interval whose coverage tests/reproduce/test_coverage.py checks.

- A mean over seeds (and a fall, a correlation, a paired difference: each taken per seed first, then averaged)
  gets Student's t-interval, x̄ ± t(0.975, n−1)·s/√n: exact for normal seeds at any n, and within 93–97 % at
  the seed counts the report uses for moderately skewed ones (gamma, shape 4). The percentile bootstrap the
  report used before covered 50 % at n = 2 and 86 % at n = 5 (issue 32).
- A slope over sweep points (batch sizes, depths) is a linear combination of the points' seed means, so its
  variance is the sum of the points' squared standard errors times their weights; the interval is a t-interval
  with Welch–Satterthwaite degrees of freedom (Satterthwaite 1946). The sweep values themselves are fixed.
- A correlation over sweep points (r over batch sizes) gets a hierarchical percentile bootstrap: seeds
  resampled within each sweep point, r refitted (never the points themselves resampled: at 4 points a third of
  those resamples hold two distinct points and give r = ±1). A resampled point mean varies less than the mean
  does (by √((n−1)/n)) and is closer to normal than Student's t at small n, so each point's resampled deviation
  is scaled by √(n/(n−1))·t(0.975, n−1)/z(0.975): for one point this is exactly the t-interval. Unscaled, the
  interval held r 83–89 % of the time at 3–10 seeds; scaled, 94–97 % (test_coverage.py's table).

A verdict reads an interval three ways (`Est.at_least`, `Est.at_most`): met when the whole interval is on the
passing side of the threshold, missed ("not reproduced") only when the whole interval is on the failing side, and
within noise otherwise. A number resting on fewer than MIN_SEEDS seeds gets no verdict (`FEW`). Every verdict
states its power: the interval's half-width beside the effect it must resolve, underpowered when wider.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats as _st

B = 2000          # bootstrap resamples (the hierarchical bootstrap of r)
LEVEL = 0.95
SEED = 20190      # a fixed generator: the report is the same every time it is written
MIN_SEEDS = 5     # fewer seeds than this: "too few seeds", no verdict (issue 32)
TOO_FEW = "too few seeds"


class _Few:
    """The outcome of a check on fewer than MIN_SEEDS seeds: neither met nor missed, and falsy (never 'met')."""

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "FEW"


FEW = _Few()


@dataclass(frozen=True)
class Est:
    """A point estimate with its 95 % interval; lo/hi are NaN when there is none (n < 2). n counts the seeds the
    number rests on (for a fit over sweep points: the fewest seeds at any point)."""

    value: float
    lo: float
    hi: float
    n: int

    @property
    def has_interval(self) -> bool:
        return math.isfinite(self.lo) and math.isfinite(self.hi)

    @property
    def half(self) -> float:
        """Half the interval's width (the larger side where it is not symmetric)."""
        if not (self.has_interval and math.isfinite(self.value)):
            return math.nan
        return max(self.value - self.lo, self.hi - self.value)

    def _judge(self, passing: bool, failing: bool):
        if not math.isfinite(self.value):
            return False
        if self.n < MIN_SEEDS:
            return FEW
        if not self.has_interval:
            return None
        return True if passing else False if failing else None

    def at_least(self, thr: float):
        """True if the interval's low end is ≥ thr; False only if its high end is < thr (the interval excludes
        the threshold on the failing side); FEW under MIN_SEEDS seeds; None (within noise) otherwise."""
        return self._judge(self.lo >= thr, self.hi < thr)

    def at_most(self, thr: float):
        """True if the interval's high end is ≤ thr; False only if its low end is > thr; FEW under MIN_SEEDS
        seeds; None (within noise) otherwise."""
        return self._judge(self.hi <= thr, self.lo > thr)

    def underpowered(self, effect: float) -> bool:
        """The interval is wider (half-width) than the effect the rule must resolve (no interval: underpowered)."""
        h = self.half
        return not math.isfinite(h) or h > abs(effect)

    def power(self, effect: float, nd: int = 2) -> str:
        """'±h vs effect', and 'underpowered' where the half-width exceeds the effect."""
        if self.n < MIN_SEEDS:
            return f"n={self.n} < {MIN_SEEDS} seeds"
        h = self.half
        hs = "no interval" if not math.isfinite(h) else f"±{h:.{nd}f}"
        return f"{hs} vs {abs(effect):.{nd}g}" + (", underpowered" if self.underpowered(effect) else "")

    def fmt(self, nd: int = 2) -> str:
        def f(x: float) -> str:   # round first: no "-0.00" for a tiny negative end
            return f"{round(x, nd) + 0.0:.{nd}f}"

        if not math.isfinite(self.value):
            return "–"
        if not self.has_interval:
            return f"{f(self.value)} (n={self.n}, no interval)"
        return f"{f(self.value)} [{f(self.lo)}, {f(self.hi)}]"


def outcome(m) -> str:
    """A check's outcome in words."""
    return "yes" if m is True else "no" if m is False else TOO_FEW if m is FEW else "within noise"


def _finite(vals) -> list[float]:
    return [float(v) for v in vals if v is not None and math.isfinite(v)]


def t_interval(m: float, se: float, df: float, n: int, level: float = LEVEL) -> Est:
    if not (math.isfinite(m) and math.isfinite(se) and df > 0):
        return Est(m, math.nan, math.nan, n)
    h = float(_st.t.ppf(0.5 + level / 2, df)) * se
    return Est(m, m - h, m + h, n)


def mean_ci(vals) -> Est:
    """Mean over seeds with Student's t-interval (non-finite values left out; n < 2: no interval)."""
    v = np.array(_finite(vals), dtype=float)
    n = len(v)
    if n == 0:
        return Est(math.nan, math.nan, math.nan, 0)
    m = float(v.mean())
    if n < 2:
        return Est(m, math.nan, math.nan, n)
    return t_interval(m, float(v.std(ddof=1)) / math.sqrt(n), n - 1, n)


def corr(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
        return math.nan
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def corr_mean_ci(rs) -> Est:
    """Correlations taken per seed, averaged in Fisher's z = atanh r with the t-interval there, mapped back: the
    mean of r itself is bounded and skewed near ±1, its z is close to normal (Fisher 1921)."""
    z = [math.atanh(max(-0.999999, min(0.999999, r))) for r in _finite(rs)]
    e = mean_ci(z)
    return Est(*(math.tanh(x) if math.isfinite(x) else math.nan for x in (e.value, e.lo, e.hi)), e.n)


def _groups(groups) -> list[np.ndarray]:
    return [np.array(_finite(g), dtype=float) for g in groups]


def sweep_slope(x, groups) -> Est:
    """Least-squares slope of the per-point seed means over fixed sweep values x (groups[k]: the seeds' values at
    x[k]), with a t-interval of Welch–Satterthwaite degrees of freedom. Points with no finite seed are left out; a
    point with one seed has no variance estimate, so the fit gets no interval. n is the fewest seeds at a point."""
    x = np.asarray(x, float)
    gs = _groups(groups)
    keep = [i for i, g in enumerate(gs) if len(g) and math.isfinite(x[i])]
    if len(keep) < 2 or np.ptp(x[keep]) == 0:
        return Est(math.nan, math.nan, math.nan, min((len(gs[i]) for i in keep), default=0))
    xs = x[keep]
    c = (xs - xs.mean()) / ((xs - xs.mean()) ** 2).sum()
    ns = np.array([len(gs[i]) for i in keep])
    m = np.array([gs[i].mean() for i in keep])
    b = float((c * m).sum())
    n = int(ns.min())
    if n < 2:
        return Est(b, math.nan, math.nan, n)
    v = c ** 2 * np.array([gs[i].var(ddof=1) for i in keep]) / ns
    var = float(v.sum())
    if var == 0:
        return Est(b, b, b, n)
    df = var ** 2 / float((v ** 2 / (ns - 1)).sum())
    return t_interval(b, math.sqrt(var), df, n)


def sweep_corr(xgroups, ygroups, b: int = B, seed: int = SEED) -> Est:
    """Pearson r between the per-point seed means of x and y over sweep points, with the hierarchical
    percentile bootstrap: seeds resampled within each point (x and y of a seed kept together), each point's
    resampled deviation from its mean scaled to the t-interval's width (module docstring), r refitted.
    xgroups[k], ygroups[k]: the seeds' (paired) values at point k; a seed missing either is left out."""
    pts = []
    for xs, ys in zip(xgroups, ygroups):
        pair = [(a, c) for a, c in zip(xs, ys) if math.isfinite(a) and math.isfinite(c)]
        if pair:
            pts.append(np.array(pair, dtype=float))
    n = min((len(p) for p in pts), default=0)
    value = corr([p[:, 0].mean() for p in pts], [p[:, 1].mean() for p in pts]) if len(pts) >= 3 else math.nan
    if not math.isfinite(value) or n < 2:
        return Est(value, math.nan, math.nan, n)
    rng = np.random.default_rng(seed)
    mx = np.empty((b, len(pts)))
    my = np.empty((b, len(pts)))
    z = float(_st.norm.ppf(0.5 + LEVEL / 2))
    for k, p in enumerate(pts):
        m = len(p)
        c = math.sqrt(m / (m - 1)) * float(_st.t.ppf(0.5 + LEVEL / 2, m - 1)) / z if m > 1 else 0.0
        idx = rng.integers(0, m, size=(b, m))
        mean = p.mean(axis=0)
        d = (p[idx] - mean).mean(axis=1) * c
        mx[:, k], my[:, k] = mean[0] + d[:, 0], mean[1] + d[:, 1]
    xc, yc = mx - mx.mean(1, keepdims=True), my - my.mean(1, keepdims=True)
    with np.errstate(all="ignore"):
        r = (xc * yc).sum(1) / np.sqrt((xc ** 2).sum(1) * (yc ** 2).sum(1))
    ok = r[np.isfinite(r)]
    if len(ok) < b / 2:
        return Est(value, math.nan, math.nan, n)
    a = (1 - LEVEL) / 2
    return Est(value, float(np.quantile(ok, a)), float(np.quantile(ok, 1 - a)), n)


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


def ep(x) -> str:
    """An epoch: whole as today, a fraction (a snapshot inside an epoch, measure.snapshot_unit = step) with 3
    significant digits, so the first epoch's snapshots do not all print as 0."""
    if x is None or not np.isfinite(x):
        return "–"
    return f"{x:.0f}" if float(x).is_integer() else f"{x:.3g}"


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


def verdict3(met: Sequence, partial_ok: bool = True) -> str:
    """too few seeds when any check rests on fewer than MIN_SEEDS; reproduced when every check is met by its
    whole interval; partially when some are met and some missed (interval wholly on the failing side); not
    reproduced when some are missed and none met; within noise otherwise (an interval straddles a threshold)."""
    if any(m is FEW for m in met):
        return TOO_FEW
    if all(m is True for m in met):
        return "reproduced"
    if any(m is False for m in met):
        return "partially" if partial_ok and any(m is True for m in met) else "not reproduced"
    return "within noise"


def as_check(verdict: str):
    """A part's verdict as one check of the whole: reproduced → met, partially or not reproduced → missed (the
    part holds only in some layers, or in none), too few seeds → FEW, within noise → None."""
    return {"reproduced": True, "partially": False, "not reproduced": False, TOO_FEW: FEW}.get(verdict)


def combined_verdict(verdicts: Sequence[str]) -> str:
    """One row's verdict from its data sets' (MNIST and SZT). Data sets with too few seeds are left out (all of
    them: too few seeds), and then only part of the claim is judged, so a reproduced rest reads partially. Of
    the rest: reproduced only if all are, not reproduced if none is, within noise if all are reproduced or
    within noise, partially otherwise."""
    judged = [v for v in verdicts if v != TOO_FEW]
    if not judged:
        return TOO_FEW
    if all(v == "reproduced" for v in judged):
        return "reproduced" if len(judged) == len(verdicts) else "partially"
    if all(v == "not reproduced" for v in judged):
        return "not reproduced"
    return "within noise" if all(v in ("reproduced", "within noise") for v in judged) else "partially"
