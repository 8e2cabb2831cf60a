"""SweepReport on synthetic records: exact fits of a constructed linear relation and power law."""
import math

import pytest

from ibtui import quantities as Q
from ibtui.records import Record, RunInfo
from ibtui.sinks.sweep_report import SweepReport, convergence_epoch, linear_fit, peak_epoch, power_law_fit


def info(sweep, n_layers):
    layers = tuple(str(j) for j in range(1, n_layers + 1))
    return RunInfo(run="t", scenario_path="", device="cpu", seeds=(0, 1), epochs=600, layers=layers,
                   layer_widths=(3,) * n_layers, n_points=16, mi_points="all", estimators=("bin30",),
                   estimator_settings={"bin30": ""}, noise_levels=(0.0,), sweep=sweep)


def rec(sweep, seed, epoch, spe, layer, quantity, value, estimator=""):
    return Record("t", seed, epoch, epoch * spe, layer, quantity, estimator, float(value), sweep)


def test_helpers():
    assert convergence_epoch({0: 0.5, 10: 0.995, 20: 0.98, 30: 1.0, 40: 0.999}) == 30.0  # the dip at 20 counts
    assert convergence_epoch({0: 1.0, 5: 1.0}) == 0.0
    assert math.isnan(convergence_epoch({}))
    assert peak_epoch({0: 1.0, 5: 3.0, 9: 2.0}) == 5.0
    assert math.isnan(peak_epoch({0: 1.0, 5: 3.0, 9: 4.0}))  # still rising: no compression yet
    b, a, r = linear_fit([1.0, 2.0, 4.0], [5.0, 7.0, 11.0])
    assert (b, a) == pytest.approx((2.0, 3.0), abs=1e-12) and r == pytest.approx(1.0, abs=1e-12)
    p, c = power_law_fit([1.0, 2.0, 4.0], [80.0, 20.0, 5.0])
    assert (p, c) == pytest.approx((-2.0, 80.0), rel=1e-12)


def test_batch_sweep_recovers_a_constructed_linear_relation():
    """Compression start = 700 + 3 × transition in iterations, with different steps per epoch per batch."""
    report = SweepReport(setting="train.batch_size")
    cases = {64: (10, 50), 128: (30, 25), 256: (60, 10), 512: (100, 7)}  # batch → (transition epoch, steps/epoch)
    for batch, (t, spe) in cases.items():
        label = f"train.batch_size={batch}"
        report.start(info(label, 3))  # layers 1, 2, 3: the last hidden layer is 2
        c = (3 * t * spe + 700) // spe  # compression start in epochs (an integer by construction)
        assert c * spe == 3 * t * spe + 700
        batch_records = []
        for e in range(0, 601):
            batch_records.append(rec(label, "mean", e, spe, "2", Q.MI_XT, 10 - ((e - c) / 100) ** 2, "bin30"))
            batch_records.append(rec(label, "mean", e, spe, "1", Q.MI_XT, 12 - e / 600, "bin30"))  # not used
            for seed in (0, 1):
                batch_records.append(rec(label, seed, e, spe, "", Q.ACC_TRAIN, 1.0 if e >= 2 * t else 0.5))
                for layer, te in (("1", 5), ("2", t + (2 if seed else -2)), ("3", math.nan)):
                    value = te if e > 3 * t else math.nan  # NaN until declared
                    batch_records.append(rec(label, seed, e, spe, layer, "transition_epoch", value))
        report.emit(batch_records)
    report.close(True)
    fit = report.batch_fit()
    assert fit["n"] == 4
    assert fit["slope"] == pytest.approx(3.0, rel=1e-12)
    assert fit["intercept"] == pytest.approx(700.0, rel=1e-12)
    assert fit["r"] == pytest.approx(1.0, abs=1e-12)
    assert fit["x_iterations"] == [500.0, 750.0, 600.0, 700.0]
    p64 = report.points["train.batch_size=64"]
    assert p64.transition("2") == (10.0, pytest.approx(2 * math.sqrt(2)), 2)
    assert p64.transition("3")[2] == 0 and p64.convergence(0.99)[:2] == (20.0, 0.0)
    text = report.text()
    assert "700 + 3 × transition (iterations), r = 1.000" in text
    assert "10 ± 2.8 (2/2)" in text


def test_depth_sweep_recovers_a_constructed_power_law():
    """Convergence epoch τ_K = 3600 K^−2 (mean of τ ± d over two seeds): exponent −2, α = 0.5."""
    report = SweepReport(setting="model.depth")
    spread = {1: 100, 2: 100, 3: 100, 4: 25, 5: 4}
    for k in range(1, 6):
        label = f"model.depth={k}"
        report.start(info(label, k + 1))
        tau = 3600 // k ** 2
        assert tau * k ** 2 == 3600
        out = []
        for seed, t in ((0, tau - spread[k]), (1, tau + spread[k])):
            for e in (0, t // 2, t - 1, t, 4000):
                out.append(rec(label, seed, e, 7, "", Q.ACC_TRAIN, 0.98 if e >= t else 0.6))
        report.emit(out)
    report.close(True)
    fit = report.depth_fit()
    assert fit["K"] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert fit["tau"] == [3600.0, 900.0, 400.0, 225.0, 144.0]
    assert fit["exponent"] == pytest.approx(-2.0, rel=1e-12)
    assert fit["prefactor"] == pytest.approx(3600.0, rel=1e-12)
    assert fit["alpha"] == pytest.approx(0.5, rel=1e-12)
    text = report.text()
    assert "3600 × K^-2.000 (α = 0.5)" in text
    assert "3600 ± 1.4e+02" in text  # sd of 3500 and 3700


def test_empty_and_stopped_reports():
    assert SweepReport(setting="train.lr").text() == "sweep report: no records."
    report = SweepReport(setting="train.lr")
    report.start(info("train.lr=0.001", 2))
    report.emit([rec("train.lr=0.001", 0, 1, 7, "", Q.ACC_TRAIN, 0.7)])
    report.close(False)
    assert "stopped before its end" in report.text()
