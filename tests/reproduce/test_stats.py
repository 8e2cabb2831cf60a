"""The bootstrap behind every interval of the reproduction report, and the two falls after a peak."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ibtui.reproduce.stats import Est, bootstrap, corr_ci, falls, mean_ci, slope_ci, verdict3


def test_mean_interval_covers_the_true_mean_about_95_percent_of_the_time():
    # 200 samples of 30 draws from N(1, 2²): the percentile interval of the mean should hold μ = 1 in ~95 % of
    # them (slightly fewer at n = 30: the percentile interval is a little narrow, ~93 %).
    rng = np.random.default_rng(0)
    hits = 0
    trials = 200
    for _ in range(trials):
        e = mean_ci(rng.normal(1.0, 2.0, size=30))
        hits += e.lo <= 1.0 <= e.hi
    assert 0.88 <= hits / trials <= 0.99


def test_interval_width_matches_the_standard_error():
    rng = np.random.default_rng(1)
    x = rng.normal(0.0, 1.0, size=400)
    e = mean_ci(x)
    se = x.std(ddof=1) / math.sqrt(len(x))
    assert e.value == pytest.approx(x.mean())
    assert (e.hi - e.lo) == pytest.approx(2 * 1.96 * se, rel=0.15)


def test_same_seed_same_interval_other_seed_other_interval():
    x = [0.1, 0.5, 0.9, 1.3, 2.0, 0.7]
    slow = bootstrap(x, lambda u: float(np.mean(u)))
    assert slow == mean_ci(x)                                  # the vectorised mean is the same numbers
    a = bootstrap(x, lambda u: float(np.mean(u)), seed=7)
    b = bootstrap(x, lambda u: float(np.mean(u)), seed=7)
    c = bootstrap(x, lambda u: float(np.mean(u)), seed=8)
    assert a == b
    assert (a.lo, a.hi) != (c.lo, c.hi)


def test_degenerate_cases():
    assert math.isnan(mean_ci([]).value) and mean_ci([]).n == 0
    one = mean_ci([2.5])
    assert one.value == 2.5 and math.isnan(one.lo) and math.isnan(one.hi)
    const = mean_ci([3.0] * 5)
    assert (const.value, const.lo, const.hi) == (3.0, 3.0, 3.0)
    assert mean_ci([1.0, float("nan"), 3.0]).n == 2           # non-finite seeds left out
    assert math.isnan(corr_ci([1, 2, 3], [5, 5, 5]).value)    # r of a constant is undefined
    # a perfect line: every resample with two distinct x has slope 2; those with one are dropped
    s = slope_ci([1, 2, 3, 4, 5], [2, 4, 6, 8, 10])
    assert (s.value, s.lo, s.hi) == pytest.approx((2.0, 2.0, 2.0))


def test_conservative_end_decides():
    e = Est(0.6, 0.2, 1.0, 5)
    assert e.at_least(0.5) is None            # point meets it, interval straddles: within noise
    assert Est(0.6, 0.55, 0.7, 5).at_least(0.5) is True
    assert Est(0.3, 0.1, 0.45, 5).at_least(0.5) is False
    assert Est(0.4, 0.1, 0.7, 5).at_least(0.5) is False   # the point fails: not met, whatever the interval
    assert Est(-2.5, -3.1, -2.2, 5).at_most(-2) is True
    assert Est(-2.5, -3.1, -1.5, 5).at_most(-2) is None
    assert Est(0.6, math.nan, math.nan, 1).at_least(0.5) is None   # no interval: never "met"
    assert verdict3([True, True]) == "reproduced"
    assert verdict3([True, None]) == "within noise"
    assert verdict3([True, False]) == "partially"
    assert verdict3([False, None]) == "not reproduced"


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
