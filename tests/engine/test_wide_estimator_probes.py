"""The wide-layer estimators inside the engine: a short run records matrix-Rényi and KSG I(X;T), I(T;Y) of
every layer, within their ceilings, with their definitions in the run info (sidecar and `?` help)."""
import math

import pytest

from ibtui import quantities as Q
from ibtui.engine.trainer import Engine
from ibtui.errors import IbtuiError
from ibtui.scenario import parse_scenario
from helpers import ListSink

SZT = ('[run]\nseeds = 2\nepochs = 2\ndevice = "cpu"\n[measure]\nsnapshots = 2\nestimators = ["renyi", "ksg"]\n'
       '[measure.renyi]\npoints = 128\n[measure.ksg]\npoints = 128\n')


def _layers(sink, estimator, quantity):
    return sorted({r.layer for r in sink.records if r.estimator == estimator and r.quantity == quantity})


def test_a_short_run_records_renyi_and_ksg_for_every_layer():
    sc = parse_scenario(SZT)
    sink = ListSink()
    Engine(sc).run(sink)
    info = sink.info
    assert info.estimators == ("renyi", "ksg")
    renyi = info.estimator_settings["renyi"]
    assert "α = 1.01" in renyi and "on 128 of the MI points" in renyi
    assert "k = 3" in info.estimator_settings["ksg"] and "on 128 of the MI points" in info.estimator_settings["ksg"]
    layers = [str(i) for i in range(1, len(sc.model.hidden_widths) + 2)]  # hidden layers and the output
    for est in ("renyi", "ksg"):
        for q in (Q.MI_XT, Q.MI_TY):
            assert _layers(sink, est, q) == layers
    ceiling = math.log2(128)
    for r in sink.records:
        if r.estimator == "renyi" and r.quantity == Q.MI_XT:
            assert -1e-6 <= r.value <= ceiling + 1e-6
        if r.estimator in ("renyi", "ksg") and r.quantity == Q.MI_TY:
            assert r.value <= 1.0 + 0.05  # I(T;Y) ≤ H(Y) ≤ 1 bit for two classes (KSG: within its error)
        if r.estimator == "renyi" and r.quantity == Q.MI_TY:
            assert r.value >= -1e-6


def test_per_seed_points_and_a_noisy_network():
    # mi_points = "train": each seed measures its own training points (labels [S, n]); β > 0: KSG measures one
    # noisy pass of the hidden layers only, Rényi the noiseless layers as always.
    sc = parse_scenario(SZT + '[data]\nmi_points = "train"\n[model]\nnoise_levels = [0.05]\n')
    sink = ListSink()
    Engine(sc).run(sink)
    hidden = [str(i) for i in range(1, len(sc.model.hidden_widths) + 1)]
    assert _layers(sink, "ksg", Q.MI_XT) == hidden
    assert len(_layers(sink, "renyi", Q.MI_XT)) == len(hidden) + 1
    seeds = {r.seed for r in sink.records if r.estimator == "renyi"}
    assert {0, 1} <= seeds
    assert all(math.isfinite(r.value) for r in sink.records if r.estimator in ("renyi", "ksg"))


@pytest.mark.parametrize("setting", ["measure.renyi.alpha = 0", "measure.ksg.k = 0", "measure.renyi.points = -1"])
def test_bad_settings_are_refused(setting):
    section, key = setting.split(" = ")[0].rsplit(".", 1)
    with pytest.raises(IbtuiError):
        parse_scenario(f"[{section}]\n{key} = {setting.split(' = ')[1]}\n")
