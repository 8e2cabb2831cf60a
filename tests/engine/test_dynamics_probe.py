"""The dynamics probe in the engine: SNR of the epoch's own mini-batches, weight bookkeeping, seed
independence, the transition through the probe interface, the Gaussian and input-compression bounds."""
import math

import numpy as np
import pytest
import torch

from ibtui import quantities as Q
from ibtui.engine.probes.dynamics import DynamicsProbe, as_matrix
from ibtui.engine.probes.base import Probe
from ibtui.engine.snapshot import Snapshot
from ibtui.engine.trainer import Engine
from ibtui.measures.gaussian_bound import gaussian_bound, input_variance
from ibtui.measures.gradients import detect_transition
from ibtui.scenario import parse_scenario
from helpers import ListSink


def tiny(epochs=30, seeds=3, first=0, snapshots=None, dynamics=""):
    """A short SZT run on the CPU (binning on, a snapshot after every epoch unless told)."""
    snaps = epochs + 1 if snapshots is None else snapshots
    return parse_scenario(f'[run]\nepochs = {epochs}\nseeds = {seeds}\nfirst_seed = {first}\ndevice = "cpu"\n'
                          f'[measure]\nsnapshots = {snaps}\n[train]\nbatch_size = 256\n'
                          f'[measure.dynamics]\n{dynamics}\n')


def run(sc, spy=None):
    engine = Engine(sc)
    if spy is not None:
        spy.weights = engine.model.weight_matrices()
        engine.step_hooks.append(spy)
    sink = ListSink()
    assert engine.run(sink)
    return engine, sink


class GradSpy(Probe):
    """Keeps every step's weight gradients of one epoch, or by step of all epochs (what the probe must not need
    to do)."""

    watches_steps = True

    def __init__(self, epoch=None):
        self.weights, self.epoch = [], epoch
        self.grads, self.by_step = [], {}

    def after_step(self, step, epoch):
        grads = [w.grad.double().clone() for w in self.weights]
        if epoch == self.epoch:
            self.grads.append(grads)
        if self.epoch is None:
            self.by_step[step] = grads


@pytest.fixture(scope="module")
def base_run():
    spy = GradSpy(epoch=19)  # the steps of epoch index 19 are summarised at the snapshot of epoch 20
    engine, sink = run(tiny(), spy)
    return engine, sink, spy


def test_snr_is_that_of_the_epochs_own_minibatches(base_run):
    engine, sink, spy = base_run
    n_layers = len(engine.model.weight_matrices())
    assert len(spy.grads) == math.ceil(3277 / 256)
    for layer in range(n_layers):
        g = np.stack([step[layer].numpy() for step in spy.grads])  # [n, S, d_in, d_out]
        g = g.reshape(g.shape[0], g.shape[1], -1)
        mean = np.linalg.norm(g.mean(0), axis=1)
        std = np.sqrt(((g - g.mean(0)) ** 2).sum(axis=(0, 2)) / (g.shape[0] - 1))
        for s in engine.seeds:
            label = str(layer + 1)
            assert sink.series(s, "grad_mean", label)[20] == pytest.approx(mean[s], rel=1e-5)
            assert sink.series(s, "grad_std", label)[20] == pytest.approx(std[s], rel=1e-5)
            assert sink.series(s, "snr", label)[20] == pytest.approx(mean[s] / std[s], rel=1e-5)


def test_snr_is_finite_per_layer_after_epoch_zero(base_run):
    engine, sink, _ = base_run
    labels = [str(j) for j in range(1, len(engine.model.weight_matrices()) + 1)]
    assert labels == list(engine.info.layers)  # one weight matrix per layer, the last is the output
    for s in engine.seeds:
        for label in labels:
            snr = sink.series(s, "snr", label)
            assert math.isnan(snr[0])  # no gradient before training
            assert all(math.isfinite(v) and v > 0 for e, v in snr.items() if e > 0)
            assert set(snr) == set(range(31))


def test_weight_change_and_norm_against_the_model(base_run):
    engine, sink, _ = base_run
    initial = Engine(tiny()).model.weight_matrices()  # a fresh engine: the same initial weights, independently
    for layer, (w, w0) in enumerate(zip(engine.model.weight_matrices(), initial)):
        change = (w.detach().double() - w0.detach().double()).flatten(1).norm(dim=1)
        norm = w.detach().double().flatten(1).norm(dim=1)
        for i, s in enumerate(engine.seeds):
            assert sink.series(s, "weight_change", str(layer + 1))[30] == pytest.approx(float(change[i]), rel=1e-5)
            assert sink.series(s, "weight_norm", str(layer + 1))[30] == pytest.approx(float(norm[i]), rel=1e-6)
            assert sink.series(s, "weight_change", str(layer + 1))[0] == 0.0


def test_seeds_are_independent(base_run):
    _, together, _ = base_run
    _, alone = run(tiny(seeds=1, first=2))
    quantities = ("grad_mean", "grad_std", "snr", "weight_norm", "weight_change", "transition_epoch", "phase")
    compared = 0
    for q in quantities:
        for layer in map(str, range(1, 7)):
            a, b = together.series(2, q, layer), alone.series(2, q, layer)
            assert set(a) == set(b)
            np.testing.assert_allclose([b[e] for e in sorted(b)], [a[e] for e in sorted(a)], rtol=1e-4, atol=1e-7)
            compared += len(a)
    assert compared == len(quantities) * 6 * 31


def test_generalisation_gaps_and_input_compression_bound(base_run):
    engine, sink, _ = base_run
    m = engine.train_idx.shape[1]
    assert m == 3277
    for s in engine.seeds:
        gap, err = sink.series(s, "gen_gap"), sink.series(s, "error_gap")
        lt, ltr = sink.series(s, Q.LOSS_TEST), sink.series(s, Q.LOSS_TRAIN)
        at, atr = sink.series(s, Q.ACC_TEST), sink.series(s, Q.ACC_TRAIN)
        mi = {r.epoch: r.value for r in sink.records
              if r.seed == s and r.quantity == Q.MI_XT and r.layer == "5" and r.estimator == "bin30"}
        bound = sink.series(s, "input_compression_bound")
        for e in (0, 10, 30):
            assert gap[e] == np.float32(lt[e] - ltr[e])  # float32 difference of the recorded losses, exactly
            assert err[e] == np.float32(atr[e] - at[e])
            expected = math.sqrt((2.0 ** mi[e] + math.log(2 / 0.05)) / (2 * m))
            assert bound[e] == pytest.approx(expected, rel=1e-6)


def test_gaussian_bound_from_frozen_epoch_weights():
    """W* at epoch 10: NaN up to and at the frozen snapshot, then eq. 9 of (W(10), W(t)), ≥ 0."""
    engine, sink = run(tiny(epochs=16, seeds=2, dynamics='bound_w_star = "epoch"\nbound_epoch = 10'))
    w10 = Engine(tiny(epochs=10, seeds=2))
    w10.run(ListSink())  # training is deterministic per seed: these are the weights at epoch 10
    for j, (ws, w) in enumerate(zip(w10.model.weight_matrices(), engine.model.weight_matrices())):
        pair = f"{j}-{j + 1}"
        expected = gaussian_bound(as_matrix(ws.detach()), as_matrix(w.detach()), 1.0)
        for i, s in enumerate(engine.seeds):
            series = sink.series(s, "gaussian_bound", pair)
            assert all(math.isnan(series[e]) for e in range(11))
            assert all(math.isfinite(series[e]) and series[e] >= 0 for e in range(11, 17))
            assert series[16] == pytest.approx(float(expected[i]), rel=1e-4)
    assert {r.layer for r in sink.records if r.quantity == "gaussian_bound"} == {f"{j}-{j + 1}" for j in range(6)}


def test_sigma_t2_is_the_input_variance_when_it_matters(base_run):
    """σ_T² enters only with σ_z > 0; then it is X's variance for layer 1 and T_{j−1}'s for layer j."""
    engine, _, _ = base_run
    probe = next(p for p in engine.probes if isinstance(p, DynamicsProbe))
    _, layers, acts = engine.backend.snapshot(None)
    snap = Snapshot(engine.epoch, 0.0, layers, acts, engine.data.y, None)
    assert torch.equal(probe._sigma_t2(snap), torch.ones(3, 6, dtype=torch.float64))
    probe.bound.sigma_z2 = 0.1
    got = probe._sigma_t2(snap)
    x = engine.data.x.double()
    assert torch.allclose(got[:, 0], ((x - x.mean(0)) ** 2).mean(0).mean().expand(3), rtol=1e-6)
    for j in range(1, 6):
        assert torch.allclose(got[:, j], input_variance(layers[j - 1]).double(), rtol=1e-6)
    probe.bound.sigma_z2 = 0.0


def _synthetic_probe(snr_form="ratio", snapshots=301):
    """A probe on a real (untrained) engine, to be fed synthetic gradients step by step."""
    engine = Engine(tiny(epochs=300, seeds=2, snapshots=snapshots, dynamics=f'snr = "{snr_form}"'))
    probe = next(p for p in engine.probes if isinstance(p, DynamicsProbe))
    return engine, probe


def _feed_epoch(engine, probe, means, deltas, epoch):
    """Two mini-batches (the epoch's first two steps) g = m ± δ per layer: ‖mean‖ = ‖m‖, √tr Cov = √2‖δ‖."""
    for i, sign in enumerate((1.0, -1.0)):
        for w, m, d in zip(engine.model.weight_matrices(), means, deltas):
            w.grad = m + sign * d
        probe.after_step(epoch * engine.steps_per_epoch + i, epoch)


def test_transition_through_the_probe_interface():
    """An SNR flat at 10 that falls as (e/e_k)^−2 after a kink at e_k (per seed and layer) is declared
    once, as the detector alone declares it on the same series, between the kink and 0.55 decade after."""
    engine, probe = _synthetic_probe()
    shapes = [w.shape for w in engine.model.weight_matrices()]
    kinks = torch.tensor([[20.0, 30, 40, 50, 60, 70], [25.0, 35, 45, math.inf, 65, 80]],  # inf: no kink
                         dtype=torch.float64)
    unit = [torch.zeros(sh, dtype=torch.float32) for sh in shapes]
    for u in unit:
        u[:, 0, 0] = 1.0
    other = [torch.zeros(sh, dtype=torch.float32) for sh in shapes]
    for o in other:
        o[:, 0, 1] = 1.0 / math.sqrt(2.0)
    epochs = list(range(1, 301))
    seen_snr, recorded, phases = [], [], []
    for e in epochs:
        snr = 10.0 * torch.where(e > kinks, (kinks / e) ** 2, torch.ones_like(kinks))  # [S, L]
        means = [u * snr[:, j, None, None].float() for j, u in enumerate(unit)]
        _feed_epoch(engine, probe, means, other, e - 1)  # √tr Cov = 1
        snap = Snapshot(e, 0.0, [], [], engine.data.y, None)
        out = probe.at_snapshot(snap)
        got = torch.stack([out[(str(j + 1), "snr", "")] for j in range(6)], dim=1)
        assert torch.allclose(got.double(), snr, rtol=1e-5)
        seen_snr.append(got.double())
        recorded.append(torch.stack([out[(str(j + 1), "transition_epoch", "")] for j in range(6)], dim=1))
        phases.append(torch.stack([out[(str(j + 1), "phase", "")] for j in range(6)], dim=1))
    offline = detect_transition(torch.tensor(epochs, dtype=torch.float64), torch.stack(seen_snr, dim=-1),
                                window=0.1, margin=0.3, hold=0.1)
    final = recorded[-1]
    assert torch.equal(torch.isnan(final), torch.isinf(kinks))
    assert torch.allclose(final[~torch.isnan(final)], offline[~torch.isnan(offline)])
    finite = ~torch.isinf(kinks)
    assert bool((final[finite] >= kinks[finite]).all() and (final[finite] <= kinks[finite] * 10 ** 0.55).all())
    for t, (rec, ph) in enumerate(zip(recorded, phases)):  # NaN until declared, then fixed; phase follows it
        e = epochs[t]
        declared = ~torch.isnan(rec)
        assert torch.equal(rec[declared], final[declared])
        assert torch.equal(ph, (declared & (rec <= e)).float())
    assert bool((phases[-1][finite] == 1).all()) and bool((phases[-1][~finite] == 0).all())


def test_snr_squared_form_and_lazy_window_reset():
    engine, probe = _synthetic_probe("squared")
    shapes = [w.shape for w in engine.model.weight_matrices()]
    means = [torch.full(sh, 0.5) for sh in shapes]
    deltas = [torch.full(sh, 0.25) for sh in shapes]
    for epoch in (0, 1):  # the second epoch's window must not contain the first's steps
        _feed_epoch(engine, probe, [m * (epoch + 1) for m in means], deltas, epoch)
    assert probe.moments.count == 2
    out = probe.at_snapshot(Snapshot(2, 0.0, [], [], engine.data.y, None))
    for j, sh in enumerate(shapes):
        n = math.prod(sh[1:])
        snr = (1.0 * math.sqrt(n)) / (math.sqrt(2.0) * 0.25 * math.sqrt(n))  # ‖m‖ / (√2‖δ‖)
        assert torch.allclose(out[(str(j + 1), "snr", "")], torch.full((2,), snr ** 2), rtol=1e-5)
        assert torch.allclose(out[(str(j + 1), "grad_mean", "")], torch.full((2,), math.sqrt(n)), rtol=1e-5)
    engine, probe = _synthetic_probe("squared", snapshots=2)  # snapshots at epochs 0 and 300 only
    assert not probe.watches_epoch(5) and probe.watches_epoch(299)
    _feed_epoch(engine, probe, means, deltas, 5)  # an epoch that ends in no snapshot is not accumulated
    assert probe.moments.count == 0 and probe._window is None
    _feed_epoch(engine, probe, means, deltas, 299)
    assert probe.moments.count == 2 and probe._window == 300


@pytest.mark.parametrize("window_steps, schedule", [(5, "snapshots = 31"), (20, 'snapshots = 16\nschedule = "linear"')])
def test_step_window_holds_the_last_steps_before_each_snapshot(window_steps, schedule):
    """measure.dynamics.window_steps = N: the moments at a snapshot are those of the N optimiser steps before
    it (13 steps an epoch here; with snapshots every 2 epochs a 20-step window spans two epochs)."""
    sc = parse_scenario('[run]\nepochs = 30\nseeds = 2\ndevice = "cpu"\n[train]\nbatch_size = 256\n'
                        f'[measure]\n{schedule}\n[measure.dynamics]\nwindow_steps = {window_steps}\n')
    spy = GradSpy()
    engine, sink = run(sc, spy)
    spe = engine.steps_per_epoch
    assert spe == 13 and len(spy.by_step) == 30 * spe
    assert any(f"the last {window_steps} optimiser steps" in n for n in engine.info.notes)
    snaps = sorted(e for e in engine.snapshots if e > 0)
    assert snaps[:3] == ([1, 2, 3] if window_steps == 5 else [2, 4, 6])
    for epoch in (snaps[0], snaps[len(snaps) // 2], 30):
        end = epoch * spe
        steps = range(end - window_steps, end)
        for layer in range(len(engine.model.weight_matrices())):
            g = np.stack([spy.by_step[t][layer].numpy() for t in steps])  # [N, S, d_in, d_out]
            g = g.reshape(g.shape[0], g.shape[1], -1)
            mean = np.linalg.norm(g.mean(0), axis=1)
            std = np.sqrt(((g - g.mean(0)) ** 2).sum(axis=(0, 2)) / (g.shape[0] - 1))
            for s in engine.seeds:
                assert sink.series(s, "grad_mean", str(layer + 1))[epoch] == pytest.approx(mean[s], rel=1e-5)
                assert sink.series(s, "grad_std", str(layer + 1))[epoch] == pytest.approx(std[s], rel=1e-5)


def test_step_windows_are_cut_at_the_previous_snapshot():
    from ibtui.engine.probes.dynamics import snr_windows

    assert snr_windows([0, 10, 20, 50], 10, 0) == [(0, 10, 1), (10, 20, 2), (40, 50, 5)]  # the last epoch
    assert snr_windows([0, 10, 20, 50], 10, 4) == [(6, 10, 1), (16, 20, 2), (46, 50, 5)]
    assert snr_windows([0, 10, 20, 50], 10, 25) == [(0, 10, 1), (10, 20, 2), (25, 50, 5)]


def test_snr_definition_reaches_the_run_info():
    engine = Engine(tiny(epochs=2, seeds=1))
    assert any("SNR = ||mean_b g_b||_2 / sqrt(tr Cov_b g_b)" in n for n in engine.info.notes)
    assert any("Gaussian bound" in n for n in engine.info.notes)
