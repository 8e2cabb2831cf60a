"""The report's 95 % intervals hold the true value 93–97 % of the time at every seed count the report uses.

Simulated seeds, normal and skewed (gamma shape 4 and lognormal σ = 0.3, skewness ≈ 1), fixed generator seeds.
Means and per-seed falls get Student's t-interval (stats.mean_ci); slopes over sweep points the Welch–Satterthwaite
t-interval (stats.sweep_slope). The coverage is computed over many simulated reports at once with the same
formula, which a sample of trials checks against the functions themselves. Heavier skew is a known limit
(gamma shape 2: 91–92 %; lognormal σ = 1: 82–84 %). r over sweep points gets a scaled hierarchical bootstrap
(stats.sweep_corr), checked in a slow test. The table is printed by `python tests/reproduce/test_coverage.py`.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest
from scipy import stats as st

from ibtui.reproduce.stats import falls, mean_ci, sweep_corr, sweep_slope

NS = (2, 3, 4, 5, 6, 8, 10)      # the seed counts of the report's runs (cpu: 2, 3, 5; medium: 4, 6, 8, 10)
FAST_NS = (5, 10)                # the fast suite's: the fewest seeds a verdict reads, and the most
TRIALS = 50_000                  # Monte Carlo SE of a 95 % coverage: 0.1 %
LO, HI = 0.93, 0.97


KEY = {"normal": 1, "gamma": 2, "lognormal": 3}   # generator seeds (str hashes change from run to run)


def _draw(kind: str, rng, size):
    """Seed noise with mean 0 and SD 1: normal, gamma (shape 4, skewness 1) or lognormal (σ = 0.3, skew 0.95)."""
    if kind == "normal":
        return rng.normal(size=size)
    if kind == "gamma":
        return (rng.gamma(4.0, 1.0, size) - 4.0) / 2.0
    s2 = 0.3 ** 2
    return (rng.lognormal(0.0, 0.3, size) - np.exp(s2 / 2)) / np.sqrt((np.exp(s2) - 1) * np.exp(s2))


def _t_cover(x: np.ndarray, truth: float) -> float:
    """Coverage of x̄ ± t·s/√n over the rows of x (trials × seeds), the interval mean_ci computes."""
    n = x.shape[1]
    m, se = x.mean(1), x.std(1, ddof=1) / np.sqrt(n)
    for row in x[:20]:                                   # the same numbers as the function the report calls
        e = mean_ci(row)
        h = st.t.ppf(0.975, n - 1) * row.std(ddof=1) / np.sqrt(n)
        assert (e.lo, e.hi) == pytest.approx((row.mean() - h, row.mean() + h))
    return float(np.mean(np.abs(m - truth) <= st.t.ppf(0.975, n - 1) * se))


def mean_coverage(kind: str, n: int, seed: int = 0) -> float:
    rng = np.random.default_rng([seed, n, KEY[kind]])
    return _t_cover(2.0 + 0.7 * _draw(kind, rng, (TRIALS, n)), 2.0)


EPOCHS = np.geomspace(1, 3000, 30)


def _curves(kind: str, rng, size: int) -> np.ndarray:
    """I(X;T)-like curves of one layer: a rise to a peak near epoch 100–400 (each seed its own), a fall of a skewed
    size, a snapshot noise of 0.1 bit (normal or skewed)."""
    peak = np.exp(rng.uniform(np.log(100), np.log(400), (size, 1)))
    rise = 1 - np.exp(-EPOCHS / (0.3 * peak))
    fall = np.clip(np.log(EPOCHS / peak) / np.log(3000 / peak), 0, 1)
    size_ = 1.0 + 0.4 * _draw(kind, rng, (size, 1))
    return 6 + 2 * rise - size_ * fall + 0.1 * _draw(kind, rng, (size, len(EPOCHS)))


@lru_cache(maxsize=None)
def _true_fall(kind: str) -> float:
    """The expected per-seed fall peak → final, from 100,000 simulated seeds (MC SE ≈ 0.0015 bit)."""
    big = _curves(kind, np.random.default_rng([99, KEY[kind]]), 100_000)
    return float(np.mean(big.max(1) - big[:, -1]))


def fall_coverage(kind: str, n: int, seed: int = 0, trials: int = 20_000) -> float:
    """Per-seed falls peak → final, then their mean's t-interval: coverage of the expected per-seed fall."""
    rng = np.random.default_rng([seed, n, 7, KEY[kind]])
    truth = _true_fall(kind)
    c = _curves(kind, rng, trials * n)
    for row in c[:5]:                                       # the vectorised fall is stats.falls' peak → final
        assert row.max() - row[-1] == pytest.approx(falls(EPOCHS, row)["drop"])
    return _t_cover((c.max(1) - c[:, -1]).reshape(trials, n), truth)


X_DEPTH = np.log(np.arange(1, 6.0))                  # depth exponent: log τ against log K, K = 1…5
X_BATCH = np.log2([64, 128, 256, 512, 1024.0])       # batch sweep: five fixed points


def slope_coverage(kind: str, n: int, x=X_DEPTH, seed: int = 0, trials: int = TRIALS) -> float:
    """Seeds' values at each sweep point (a line of slope −0.8, spreads 0.1–0.5 growing with the point), the
    slope of the points' means with the Welch–Satterthwaite t-interval."""
    rng = np.random.default_rng([seed, n, 11, len(x), KEY[kind]])
    k = len(x)
    sd = np.linspace(0.1, 0.5, k)
    y = 3.0 - 0.8 * x[None, :, None] + sd[None, :, None] * _draw(kind, rng, (trials, k, n))
    c = (x - x.mean()) / ((x - x.mean()) ** 2).sum()
    v = c ** 2 * y.var(2, ddof=1) / n
    b = (c * y.mean(2)).sum(1)
    var = v.sum(1)
    df = var ** 2 / (v ** 2 / (n - 1)).sum(1)
    h = st.t.ppf(0.975, df) * np.sqrt(var)
    for t in range(5):                                      # the same interval as stats.sweep_slope
        e = sweep_slope(x, list(y[t]))
        assert (e.value, e.lo, e.hi) == pytest.approx((b[t], b[t] - h[t], b[t] + h[t]))
    return float(np.mean(np.abs(b + 0.8) <= h))


KINDS = ("normal", "gamma", "lognormal")


@pytest.mark.parametrize("kind", KINDS)
def test_mean_interval_covers_95_percent_at_every_seed_count(kind):
    cover = {n: mean_coverage(kind, n) for n in NS}
    assert all(LO <= c <= HI for c in cover.values()), cover


@pytest.mark.parametrize("kind", KINDS)
def test_fall_interval_covers_95_percent_where_verdicts_are_read(kind):
    cover = {n: fall_coverage(kind, n, trials=10_000) for n in FAST_NS}
    assert all(LO <= c <= HI for c in cover.values()), cover


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_fall_interval_covers_95_percent_at_every_seed_count(kind):
    cover = {n: fall_coverage(kind, n, trials=TRIALS) for n in NS}
    assert all(LO <= c <= HI for c in cover.values()), cover


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("x", [X_DEPTH, X_BATCH], ids=["depth", "batch"])
def test_slope_interval_covers_95_percent_where_verdicts_are_read(kind, x):
    cover = {n: slope_coverage(kind, n, x, trials=20_000) for n in FAST_NS}
    assert all(LO <= c <= HI for c in cover.values()), cover


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("x", [X_DEPTH, X_BATCH], ids=["depth", "batch"])
def test_slope_interval_covers_95_percent_at_every_seed_count(kind, x):
    cover = {n: slope_coverage(kind, n, x) for n in NS}
    assert all(LO <= c <= HI for c in cover.values()), cover


def test_the_old_percentile_bootstrap_did_not():
    """The interval the report used before: the percentile bootstrap of the mean over seeds (issue 32 measured
    50 % at n = 2 and 86 % at n = 5 on normal seeds). Same simulation, 1000 trials × 1000 resamples."""
    rng = np.random.default_rng(1)
    for n, lo, hi in ((2, 0.45, 0.56), (5, 0.82, 0.90)):
        x = rng.normal(size=(1000, n))
        idx = rng.integers(0, n, size=(1000, 1000, n))
        means = x[np.arange(1000)[:, None, None], idx].mean(2)
        q = np.quantile(means, [0.025, 0.975], axis=1)
        cover = float(np.mean((q[0] <= 0) & (0 <= q[1])))
        assert lo <= cover <= hi, (n, cover)


def r_coverage(n: int, trials: int = 300, seed: int = 0) -> float:
    """The hierarchical bootstrap of r over five batch sizes (seeds resampled within each): how often it holds
    the r of the points' true means (0.95: a bent line), normal seeds of SD 0.3 around means 0…4."""
    rng = np.random.default_rng([seed, n, 13])
    mx = np.arange(5.0)
    my = np.array([0.0, 1.5, 2.2, 2.6, 4.6])
    truth = float(np.corrcoef(mx, my)[0, 1])
    hits = 0
    for t in range(trials):
        xs = [list(a + 0.3 * rng.normal(size=n)) for a in mx]
        ys = [list(b + 0.3 * rng.normal(size=n)) for b in my]
        e = sweep_corr(xs, ys, b=1000, seed=t)
        hits += e.lo <= truth <= e.hi
    return hits / trials


@pytest.mark.slow
@pytest.mark.parametrize("n", (3, 4, 5, 6, 8, 10))
def test_r_interval_covers_at_least_93_percent(n):
    """The scaled hierarchical bootstrap of r: 93–99 % over 300 trials (MC SE 1.3 %; slightly conservative at
    3–5 seeds, where it runs 97–98 %; unscaled it held 78–91 %)."""
    c = r_coverage(n)
    assert 0.93 <= c <= 0.99, (n, c)


def coverage_table() -> str:
    rows = ["| interval | data | " + " | ".join(f"n = {n}" for n in NS) + " |", "|---|---|" + "---|" * len(NS)]
    for name, fn in (("mean (t)", mean_coverage), ("fall per seed, mean (t)", fall_coverage),
                     ("depth slope (Welch–Satterthwaite t)", lambda k, n: slope_coverage(k, n, X_DEPTH)),
                     ("batch slope (Welch–Satterthwaite t)", lambda k, n: slope_coverage(k, n, X_BATCH))):
        for kind in KINDS:
            rows.append(f"| {name} | {kind} | " + " | ".join(f"{100 * fn(kind, n):.1f}" for n in NS) + " |")
    rows.append("| r, hierarchical bootstrap (300 trials) | normal | " + " | ".join(
        f"{100 * r_coverage(n):.1f}" if n >= 3 else "–" for n in NS) + " |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(coverage_table())
