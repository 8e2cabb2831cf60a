"""The clustering probe: every measure of DEFINITIONS for every layer, equal to the pure measures on the
snapshot's representations at the scales 10β / β, with definitions and scales in the run's notes; the
bundled noisy/orthonormal sweep runs both points into one export."""
import pytest
import torch

from ibtui.engine.probes.clustering import ClusteringProbe, clustering_scales
from ibtui.engine.probes.base import subset_indices
from ibtui.engine.snapshot import Snapshot
from ibtui.engine.sweep import SweepRunner
from ibtui.engine.trainer import Engine
from ibtui.measures.clustering import DEFINITIONS, clustering_measures
from ibtui.scenario import ClusteringSettings, load_scenario, parse_scenario
from tests.conftest import REPO
from helpers import ListSink


def noisy_szt(beta=0.02, clustering="", data="", seeds=2, epochs=3):
    return parse_scenario(f'[run]\nepochs = {epochs}\nseeds = {seeds}\ndevice = "cpu"\n[data]\n{data}\n'
                          f'[model]\nnoise_levels = [{beta}]\n[train]\nbatch_size = 512\nlr = 0.01\n'
                          f'[measure]\nsnapshots = 2\nestimators = ["binning"]\n[measure.dynamics]\nenabled = false\n'
                          f'[measure.clustering]\nenabled = true\n{clustering}')


def probe_of(eng) -> ClusteringProbe:
    return next(p for p in eng.probes if isinstance(p, ClusteringProbe))


def snapshot(eng) -> Snapshot:
    _, layers, acts = eng.backend.snapshot(eng.mi_idx)
    labels = eng.data.y if eng.mi_idx is None else eng.data.y[eng.mi_idx]
    return Snapshot(eng.epoch, eng.beta, layers, acts, labels, eng.mi_idx)


def test_scales_follow_beta_unless_fixed():
    assert clustering_scales(ClusteringSettings(), 0.01) == (0.1, 0.01)  # Goldfeld's bin 10β, radius β
    assert clustering_scales(ClusteringSettings(), 0.0) == (0.1, 0.01)  # deterministic net: stand-ins
    assert clustering_scales(ClusteringSettings(bin_size=0.5, radius=0.2), 0.01) == (0.5, 0.2)


def test_records_are_the_measures_of_every_layer_at_10_beta_and_beta():
    eng = Engine(noisy_szt(beta=0.02))
    sink = ListSink()
    assert eng.run(sink)
    last = [r for r in sink.records if r.epoch == 3 and r.quantity in DEFINITIONS]
    assert {r.estimator for r in last} == {""}
    assert {(r.layer, r.quantity) for r in last} == {(str(l), q) for l in range(1, 7) for q in DEFINITIONS}
    snap = snapshot(eng)
    for index, h in enumerate(snap.layers, start=1):
        expected = clustering_measures(h, eng.data.y, 0.2, 0.02)  # B = 10β, r = β
        for q, v in expected.items():
            got = {r.seed: r.value for r in last if r.layer == str(index) and r.quantity == q}
            torch.testing.assert_close(torch.tensor([got[0], got[1]]), v.float(), rtol=1e-6, atol=0,
                                       equal_nan=True)
            assert got["mean"] == pytest.approx(float(v.float().mean()), rel=1e-6)
    # The definitions and the scales reach the run info (and from there the sidecar).
    notes = "\n".join(eng.info.notes)
    assert "B = 0.2, r = 0.02" in notes
    assert all(f"clustering {q}: {text}" in notes for q, text in DEFINITIONS.items())


def test_a_fixed_subset_of_points():
    eng = Engine(noisy_szt(beta=0.01, clustering="points = 700\nradius = 0.05"))
    snap = snapshot(eng)
    got = probe_of(eng).at_snapshot(snap)
    keep = subset_indices(4096, 700, torch.device("cpu"))
    assert keep.numel() == 700 and torch.equal(keep, subset_indices(4096, 700, torch.device("cpu")))
    for index in (1, 5, 6):
        h = snap.layers[index - 1][:, keep]
        expected = clustering_measures(h, eng.data.y[keep], 0.1, 0.05)
        for q in DEFINITIONS:
            torch.testing.assert_close(got[(str(index), q, "")], expected[q], equal_nan=True)
    assert any("clustering: on a fixed random subset of 700 MI points" in n and "r = 0.05 (fixed)" in n
               for n in eng.info.notes)


def test_per_seed_points_are_measured_seed_by_seed():
    eng = Engine(noisy_szt(beta=0.0, data='mi_points = "test"\nsplit_per_seed = true'))
    snap = snapshot(eng)
    assert snap.labels.dim() == 2 and not torch.equal(snap.labels[0], snap.labels[1])
    got = probe_of(eng).at_snapshot(snap)
    for i in range(2):
        expected = clustering_measures(snap.layers[2][i:i + 1], snap.labels[i], 0.1, 0.01)  # β = 0 stand-ins
        for q in DEFINITIONS:
            torch.testing.assert_close(got[("3", q, "")][i:i + 1], expected[q], equal_nan=True)


def test_noisy_orthonormal_sweep_puts_both_points_in_one_export():
    sc = load_scenario(REPO / "scenarios" / "szt_noisy_orthonormal.toml",
                       ["run.seeds=1", "run.epochs=1", "measure.snapshots=1", 'run.device="cpu"',
                        "measure.sp.points=8", "measure.sp.samples=2", "measure.clustering.points=512"])
    assert sc.sweep.setting == "model.orthonormal" and sc.sweep.values[0] == 0.0 and sc.sweep.values[1] > 0
    assert sc.model.noise_levels == [0.01] and "sp" in sc.measure.estimators and sc.measure.clustering.enabled
    runner = SweepRunner(sc)
    sink = ListSink()
    assert runner.run(sink)
    lam = sc.sweep.values[1]
    assert {r.sweep for r in sink.records} == {"model.orthonormal=0", f"model.orthonormal={lam:g}"}
    for sweep in {r.sweep for r in sink.records}:
        mine = [r for r in sink.records if r.sweep == sweep and r.epoch == 1]
        assert {(r.layer, r.quantity) for r in mine if r.quantity in DEFINITIONS} == \
            {(str(l), q) for l in range(1, 7) for q in DEFINITIONS}
        assert {r.layer for r in mine if r.quantity == "I(X;T)" and r.estimator == "sp"} == {"1", "2", "3", "4", "5"}
    assert runner.current.regularizers and runner.current.regularizers[0].strength == lam
