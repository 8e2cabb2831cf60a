"""The MI estimators inside the engine: exact values on the saturation toy, bounds and ceilings on SZT."""
import math

import pytest
import torch

from conftest import REPO
from oracles import saturation_mi_exact
from ibtui import quantities as Q
from ibtui.engine.sweep import SweepRunner
from ibtui.engine.trainer import Engine
from ibtui.scenario import load_scenario, parse_scenario
from helpers import ListSink


def test_saturation_sweep_exact_and_sp_against_quadrature():
    sc = load_scenario(REPO / "scenarios" / "saturation_sweep.toml",
                       ['run.device="cpu"', "sweep.values=[0.03, 0.5, 2.0, 3.0, 50.0]"])
    sink = ListSink()
    assert SweepRunner(sc).run(sink)
    curve = []
    for w in sc.sweep.values:
        label = f"model.init_weight={w:g}"
        ref = saturation_mi_exact(w, 0.0, 0.01)
        exact = sink.get("mean", Q.MI_XT, "exact", sweep=label)[0]
        assert exact == pytest.approx(ref, abs=1e-4)
        for seed in (0, 1, 2):
            sp = sink.get(seed, Q.MI_XT, "sp", sweep=label)[0]
            se = sink.get(seed, Q.MI_XT_SE, "sp", sweep=label)[0]
            # The Monte Carlo SE of these skewed log-density differences can be low in a single run (noted in
            # the issue), so the check is the 0.02-bit criterion; within-3-SE is tested in test_sp.py.
            assert abs(sp - ref) < 0.02 and se < 0.02
        curve.append(exact)
    assert max(curve) == pytest.approx(2.0, abs=1e-3) and curve[-1] == pytest.approx(1.0, abs=1e-3)


@pytest.mark.slow  # trains the toy for its full 8000 epochs
def test_trained_saturation_toy_falls_to_h_of_a_quarter():
    sc = load_scenario(REPO / "scenarios" / "saturation_toy.toml",
                       ['run.device="cpu"', "run.seeds=2", "run.epochs=8000", "measure.snapshots=6", "train.lr=1.0"])
    sink = ListSink()
    Engine(sc).run(sink)
    h_quarter = -(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75))
    start = sink.get("mean", Q.MI_XT, "exact", epoch=0)[0]
    end = sink.get("mean", Q.MI_XT, "exact", epoch=8000)[0]
    assert start > 1.9 and end == pytest.approx(h_quarter, abs=0.01)
    for seed in (0, 1):
        sp = sink.get(seed, Q.MI_XT, "sp", epoch=8000)[0]
        assert abs(sp - end) < 0.02
    assert sink.get("mean", Q.MI_TY, "exact", epoch=8000)[0] == pytest.approx(h_quarter, abs=0.01)


def test_sp_is_silent_without_noise_and_kde_bounds_are_ordered():
    sc = parse_scenario('[run]\nseeds = 2\nepochs = 2\ndevice = "cpu"\n[model]\nnoise_levels = [0.0, 0.05]\n'
                        '[measure]\nsnapshots = 2\nestimators = ["binning", "kde", "sp"]\n'
                        '[measure.kde]\npoints = 512\n[measure.sp]\nsamples = 2\nmc = 2\npoints = 64\n')
    eng = Engine(sc)
    assert any("sp: no value" in n for n in eng.info.notes)
    values = eng.measure()
    assert not any(k[2] == "sp" for k in values)
    for layer in range(1, 7):
        up, lo = values[(str(layer), Q.MI_XT, "kde_upper")], values[(str(layer), Q.MI_XT, "kde_lower")]
        assert torch.all(lo <= up + 1e-5) and torch.all(up <= math.log2(512) + 1e-4) and torch.all(lo >= -1e-5)
    eng.noise_index = 1
    values = eng.measure()
    sp = values[("1", Q.MI_XT, "sp")]
    assert torch.all(sp <= 12.0 + 1e-3) and torch.all(sp > 11.0)  # 10 noisy units separate nearly all 4096 inputs
    assert torch.all(values[("5", Q.MI_XT, "sp")] <= sp + 3 * values[("5", Q.MI_XT_SE, "sp")] + 0.05)


def test_exact_estimator_refuses_a_wide_first_layer():
    from ibtui.scenario import ScenarioError

    with pytest.raises(ScenarioError, match="1 unit"):
        parse_scenario('[run]\nseeds = 1\nepochs = 1\ndevice = "cpu"\n[model]\nnoise_levels = [0.1]\n'
                       '[measure]\nestimators = ["exact"]\n')


@pytest.mark.parametrize("per_seed", [False, True])
def test_kde_probe_equals_kde_mi_of_each_layer(per_seed):
    """On a CPU the probe sums every layer in tiles (kde_mi_tiled), and gives the exact float64 pairwise sums of
    kde_mi layer by layer within 1e-5 bits (also with per-seed splits)."""
    from ibtui.engine.probes.kde import KdeProbe
    from ibtui.engine.snapshot import Snapshot
    from ibtui.measures.kde import kde_mi

    sc = parse_scenario('[run]\nepochs = 0\nseeds = 3\ndevice = "cpu"\n'
                        f'[data]\nmi_points = "train"\nsplit_per_seed = {str(per_seed).lower()}\n'
                        '[measure]\nestimators = ["kde"]\n[measure.kde]\npoints = 600\npath = "compiled"\n')
    e = Engine(sc)
    probe = next(p for p in e.probes if isinstance(p, KdeProbe))
    assert probe.kde_path in ("compiled", "pytorch") and probe.fused  # tiles (PyTorch's without a compiler)
    _, layers, acts = e.backend.snapshot(e.mi_idx)
    labels = e.data.y[e.mi_idx]
    assert (labels.dim() == 2 and not bool((labels == labels[:1]).all())) == per_seed
    values = probe.at_snapshot(Snapshot(0, 0.0, layers, acts, labels, e.mi_idx))
    from ibtui.engine.probes.base import subset_of

    sub_layers, sub_labels = subset_of(Snapshot(0, 0.0, layers, acts, labels, e.mi_idx), 600)
    for index, h in enumerate(sub_layers, start=1):
        for s in range(3):
            ref = kde_mi(h[s:s + 1].double(), sub_labels[s] if sub_labels.dim() == 2 else sub_labels, 1e-3)
            for key, (q, est) in {"upper_xt": (Q.MI_XT, "kde_upper"), "lower_ty": (Q.MI_TY, "kde_lower")}.items():
                got = values[(str(index), q, est)][s].item()
                assert got == pytest.approx(ref[key].item(), abs=1e-5), (index, s, key)
