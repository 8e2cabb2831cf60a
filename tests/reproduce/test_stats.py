"""The intervals behind every verdict of the reproduction report, how a verdict reads them, and the two falls
after a peak. Coverage itself is simulated in test_coverage.py."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from ibtui.reproduce.stats import FEW, Est, as_check, corr_mean_ci, falls, mean_ci, outcome, sweep_corr, \
    sweep_slope, verdict3


def test_mean_interval_is_students_t():
    x = [0.1, 0.5, 0.9, 1.3, 2.0, 0.7]
    e = mean_ci(x)
    h = st.t.ppf(0.975, 5) * np.std(x, ddof=1) / math.sqrt(6)
    assert (e.value, e.lo, e.hi, e.n) == pytest.approx((np.mean(x), np.mean(x) - h, np.mean(x) + h, 6))
    assert e.half == pytest.approx(h)
    # n = 2: the interval is x̄ ± 12.71·s/√2, not [seed A, seed B] (which holds the mean half the time)
    two = mean_ci([1.0, 2.0])
    assert two.hi - two.lo == pytest.approx(2 * 12.7062 * math.sqrt(0.5) / math.sqrt(2), rel=1e-4)


def test_degenerate_cases():
    assert math.isnan(mean_ci([]).value) and mean_ci([]).n == 0
    one = mean_ci([2.5])
    assert one.value == 2.5 and math.isnan(one.lo) and math.isnan(one.hi)
    const = mean_ci([3.0] * 5)
    assert (const.value, const.lo, const.hi) == (3.0, 3.0, 3.0)
    assert mean_ci([1.0, float("nan"), 3.0]).n == 2           # non-finite seeds left out
    # a slope of exact lines: zero spread at every point, so a zero-width interval
    s = sweep_slope([1, 2, 3, 4, 5], [[2.0] * 5, [4.0] * 5, [6.0] * 5, [8.0] * 5, [10.0] * 5])
    assert (s.value, s.lo, s.hi, s.n) == pytest.approx((2.0, 2.0, 2.0, 5))
    assert math.isnan(sweep_slope([1, 1], [[1.0, 2.0], [3.0, 4.0]]).value)   # one distinct x: no slope
    assert math.isnan(sweep_slope([1, 2], [[1.0], [3.0]]).lo)                # one seed a point: no interval


def test_sweep_slope_is_the_t_interval_of_a_weighted_sum_of_means():
    # two points, x = 0 and 1: the slope is ȳ1 − ȳ0, its variance s0²/n0 + s1²/n1, Welch's degrees of freedom
    a, b = [1.0, 2.0, 3.0, 2.5, 1.5], [4.0, 6.0, 5.0, 7.0, 5.5, 6.5]
    e = sweep_slope([0, 1], [a, b])
    v0, v1 = np.var(a, ddof=1) / 5, np.var(b, ddof=1) / 6
    df = (v0 + v1) ** 2 / (v0 ** 2 / 4 + v1 ** 2 / 5)
    h = st.t.ppf(0.975, df) * math.sqrt(v0 + v1)
    assert (e.value, e.lo, e.hi, e.n) == pytest.approx((np.mean(b) - np.mean(a), np.mean(b) - np.mean(a) - h,
                                                        np.mean(b) - np.mean(a) + h, 5))
    # Welch's two-sample interval is the same thing (scipy ≥ 1.11)
    ci = st.ttest_ind(b, a, equal_var=False).confidence_interval(0.95)
    assert (e.lo, e.hi) == pytest.approx((ci.low, ci.high))


def test_sweep_corr_resamples_seeds_within_points_never_the_points():
    rng = np.random.default_rng(3)
    x = [[k + 0.1 * rng.normal() for _ in range(6)] for k in range(4)]
    y = [[2 * k + 0.1 * rng.normal() for _ in range(6)] for k in range(4)]
    r = sweep_corr(x, y)
    assert r.value > 0.99 and r.lo > 0.98 and r.n == 6   # 4 points resampled would give r = ±1 a third of the time
    assert r == sweep_corr(x, y)                          # a fixed generator: the same interval every time
    assert math.isnan(sweep_corr(x[:2], y[:2]).value)    # r over two points is ±1 by construction: none


def test_correlations_are_averaged_in_fisher_z():
    rs = [0.5, 0.7, 0.9, 0.8, 0.6]
    e = corr_mean_ci(rs)
    z = np.arctanh(rs)
    h = st.t.ppf(0.975, 4) * z.std(ddof=1) / math.sqrt(5)
    assert (e.value, e.lo, e.hi) == pytest.approx((np.tanh(z.mean()), np.tanh(z.mean() - h), np.tanh(z.mean() + h)))
    assert -1 < e.lo < e.value < e.hi < 1


def test_misses_are_judged_like_passes():
    assert Est(0.6, 0.55, 0.7, 5).at_least(0.5) is True     # whole interval above: met
    assert Est(0.6, 0.2, 1.0, 5).at_least(0.5) is None      # straddles: within noise
    assert Est(0.4, 0.1, 0.7, 5).at_least(0.5) is None      # the point misses, the interval straddles: within noise
    assert Est(0.3, 0.1, 0.45, 5).at_least(0.5) is False    # whole interval below: missed
    assert Est(-2.5, -3.1, -2.2, 5).at_most(-2) is True
    assert Est(-2.5, -3.1, -1.5, 5).at_most(-2) is None
    assert Est(-1.5, -1.9, -1.1, 5).at_most(-2) is False
    assert Est(0.6, math.nan, math.nan, 5).at_least(0.5) is None   # no interval: never met, never missed
    assert Est(math.nan, math.nan, math.nan, 5).at_least(0.5) is False   # nothing measured


def test_fewer_than_five_seeds_get_no_verdict():
    few = Est(3.0, 2.9, 3.1, 4).at_least(0.5)
    assert few is FEW and not few and outcome(few) == "too few seeds"
    assert verdict3([True, few]) == "too few seeds"
    assert Est(3.0, 2.9, 3.1, 4).power(0.5) == "n=4 < 5 seeds"


def test_power_is_the_half_width_beside_the_effect():
    assert Est(1.0, 0.9, 1.1, 6).power(0.5) == "±0.10 vs 0.5"
    assert Est(1.0, 0.2, 1.8, 6).power(0.5) == "±0.80 vs 0.5, underpowered"
    assert Est(1.0, 0.2, 1.8, 6).underpowered(0.5) and not Est(1.0, 0.9, 1.1, 6).underpowered(0.5)
    assert Est(1.0, 0.5, 1.1, 6).half == pytest.approx(0.5)   # the larger side of an asymmetric interval


def test_verdicts():
    assert verdict3([True, True]) == "reproduced"
    assert verdict3([True, None]) == "within noise"
    assert verdict3([True, False]) == "partially"
    assert verdict3([False, None]) == "not reproduced"
    assert [as_check(v) for v in ("reproduced", "partially", "not reproduced", "within noise")] == \
        [True, False, False, None]
    assert as_check("too few seeds") is FEW


def test_falls_both_ways():
    e = np.arange(6.0)
    v = np.array([1.0, 4.0, 2.0, 1.5, 3.0, 3.5])   # peak 4 at epoch 1, low 1.5 at epoch 3, ends at 3.5
    f = falls(e, v)
    assert (f["peak"], f["peak_epoch"], f["low"], f["low_epoch"], f["final"]) == (4.0, 1.0, 1.5, 3.0, 3.5)
    assert f["dip"] == pytest.approx(2.5)    # peak → lowest later value: sees the dip
    assert f["drop"] == pytest.approx(0.5)   # peak → final: the dip recovered
    assert f["rise"] == pytest.approx(3.0)
    assert math.isnan(falls(np.array([]), np.array([]))["dip"])


def test_a_row_of_two_data_sets_is_reproduced_only_if_both_are():
    from ibtui.reproduce.stats import combined_verdict

    assert combined_verdict(["too few seeds", "reproduced"]) == "partially"     # only part of the claim judged
    assert combined_verdict(["too few seeds", "within noise"]) == "within noise"
    assert combined_verdict(["too few seeds", "too few seeds"]) == "too few seeds"
    assert combined_verdict(["reproduced", "reproduced"]) == "reproduced"
    assert combined_verdict(["not reproduced", "not reproduced"]) == "not reproduced"
    assert combined_verdict(["reproduced", "within noise"]) == "within noise"
    assert combined_verdict(["reproduced", "not reproduced"]) == "partially"
    assert combined_verdict(["within noise", "partially"]) == "partially"


def test_the_depth_sentence_names_ties_instead_of_calling_them_falls():
    from ibtui.reproduce.claims.depth_sweep import fastest

    assert fastest([1, 2, 3, 4, 5], [10, 6, 4, 4, 4]) == "the fastest depths are K = 3, 4, 5 (τ never rises, equal at some adjacent depths)"
    assert fastest([1, 2, 3], [10, 6, 4]) == "the fastest depth is K = 3 (τ falls at every step)"
    assert fastest([1, 2, 3], [10, 6, 7]) == "the fastest depth is K = 2 (τ does not fall monotonically)"
