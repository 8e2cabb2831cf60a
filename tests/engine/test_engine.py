"""The batched engine: seeds are independent, both optimisers train, pause acts between steps and stop and
noise at epoch boundaries, the learning-rate schedule."""
import math
import threading
import time

import pytest
import torch

from ibtui import quantities as Q
from ibtui.engine import rng
from ibtui.controls import Controls
from ibtui.engine.trainer import Engine
from ibtui.scenario import parse_scenario
from helpers import ListSink
from ibtui.records import Fanout


def small(epochs=12, seeds=2, first=0, snapshots=6, train="", extra=""):
    """A short SZT scenario on the CPU; `train` adds lines to [train], `extra` adds whole sections."""
    return parse_scenario(f'[run]\nepochs = {epochs}\nseeds = {seeds}\nfirst_seed = {first}\ndevice = "cpu"\n'
                          f'[measure]\nsnapshots = {snapshots}\n[train]\nbatch_size = 256\n{train}\n{extra}')


def run_engine(sc, controls=None):
    sink = ListSink()
    finished = Engine(sc).run(sink, controls)
    return sink, finished


def test_permutations_are_valid_and_do_not_depend_on_other_seeds():
    seeds = torch.tensor([0, 1, 2, 3])
    p = rng.permutations(seeds, (rng.STREAM_BATCH, 5), 3277)
    assert torch.equal(p.sort(dim=1).values, torch.arange(3277).expand(4, -1))
    assert not torch.equal(p[0], p[1])
    assert torch.equal(p[2], rng.permutations(torch.tensor([2]), (rng.STREAM_BATCH, 5), 3277)[0])
    assert not torch.equal(p[2], rng.permutations(torch.tensor([2]), (rng.STREAM_BATCH, 6), 3277)[0])


def test_hashed_normals_are_standard_normal():
    z = rng.normal(torch.tensor([0, 1]), (rng.STREAM_NOISE, 3), (200_000,))
    for row in z:
        assert abs(row.mean().item()) < 0.01 and abs(row.std().item() - 1) < 0.01
        assert abs((row.abs() < 1).float().mean().item() - 0.6827) < 0.005


def test_batched_weights_and_per_seed_init():
    eng = Engine(small(seeds=3))
    ws = eng.model.weight_matrices()
    assert [tuple(w.shape) for w in ws] == [(3, 12, 10), (3, 10, 7), (3, 7, 5), (3, 5, 4), (3, 4, 3), (3, 3, 2)]
    w0 = ws[0][0]
    assert abs(w0.std().item() - 1 / math.sqrt(12)) < 0.1 and w0.abs().max() <= 2 / math.sqrt(12) + 1e-6
    assert all(torch.all(b == 0) for b in eng.model.biases)
    assert not torch.equal(ws[0][0], ws[0][1])


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_a_seed_does_not_depend_on_the_seeds_beside_it(optimizer):
    # Batched matmuls of different seed counts may round differently (~1e-7); training amplifies that
    # a little, so equality is within float tolerance. Epoch 0 (initialisation) must match exactly.
    train = f'optimizer = "{optimizer}"\nlr = {0.01 if optimizer == "adam" else 0.1}'
    together, _ = run_engine(small(epochs=15, seeds=4, snapshots=5, train=train))
    alone, _ = run_engine(small(epochs=15, seeds=1, first=2, snapshots=5, train=train))
    assert together.series(2, Q.LOSS_TRAIN)[0] == alone.series(2, Q.LOSS_TRAIN)[0]
    for q in (Q.LOSS_TRAIN, Q.ACC_TEST):
        a, b = together.series(2, q), alone.series(2, q)
        assert a.keys() == b.keys() and len(a) >= 5
        for e in a:
            assert a[e] == pytest.approx(b[e], rel=1e-3, abs=1e-4)
    a = together.series(2, Q.MI_XT, "3", "bin30")
    b = alone.series(2, Q.MI_XT, "3", "bin30")
    assert all(abs(a[e] - b[e]) < 0.02 for e in a)  # a bin-edge flip of one point moves H by < 0.01 bit


@pytest.mark.parametrize("optimizer, lr", [("adam", 0.01), ("sgd", 0.5)])
def test_training_lowers_the_loss(optimizer, lr):
    sink, finished = run_engine(small(epochs=40, snapshots=4, train=f'optimizer = "{optimizer}"\nlr = {lr}'))
    assert finished and sink.closed is None
    loss = sink.series("mean", Q.LOSS_TRAIN)
    assert loss[40] < loss[0] - 0.05
    # one progress report an epoch, then one for each snapshot still measured after the last epoch
    assert sink.epochs[:40] == list(range(1, 41)) and set(sink.epochs[40:]) <= {40}


def test_snapshot_records_cover_every_layer_seed_and_mean():
    sink, _ = run_engine(small(seeds=3))
    epochs = sorted({r.epoch for r in sink.records})
    assert epochs[0] == 0 and epochs[-1] == 12
    layers = {r.layer for r in sink.records if r.quantity == Q.MI_XT}
    assert layers == {"1", "2", "3", "4", "5", "6"}
    mi = sink.series("mean", Q.MI_XT, "1", "bin30")
    assert all(0 <= v <= 12 for v in mi.values())
    per_seed = [sink.series(s, Q.MI_XT, "4", "bin30")[12] for s in range(3)]
    assert sink.series("mean", Q.MI_XT, "4", "bin30")[12] == pytest.approx(sum(per_seed) / 3, rel=1e-6)
    assert sink.info.n_points == 4096 and sink.info.estimators == ("bin30",)


def test_mi_points_train_and_test():
    eng = Engine(small(epochs=1, extra='[data]\nmi_points = "test"\nsplit_per_seed = true'))
    assert eng.info.n_points == 819
    values = eng.measure()
    assert all(v.shape == (2,) for v in values.values())
    assert torch.all(values[("1", Q.MI_XT, "bin30")] <= math.log2(819) + 1e-4)


def test_stop_pause_and_noise_at_epoch_boundaries():
    sc = parse_scenario('[run]\nepochs = 100000\nseeds = 1\ndevice = "cpu"\n[model]\nnoise_levels = [0.0, 0.1]\n'
                        '[measure]\nsnapshots = 3\n')
    eng = Engine(sc)
    controls = Controls()
    sink = ListSink()

    seen = []

    class Stopper(ListSink):
        def progress(self, p):
            epoch = p.epoch
            seen.append((epoch, p.noise_beta))
            if epoch == 2:
                controls.request_noise(1)
            if epoch == 4:
                controls.stop.set()

    finished = eng.run(Fanout([sink, Stopper()]), controls)
    assert not finished and eng.epoch == 4
    assert seen == [(1, 0.0), (2, 0.0), (3, 0.1), (4, 0.1)]
    noise = [(r.epoch, r.value) for r in sink.records if r.quantity == Q.NOISE_BETA]
    assert noise == [(0, 0.0), (2, 0.1)]  # applied and recorded at the boundary after epoch 2

    controls = Controls()
    controls.paused.set()
    t = threading.Thread(target=eng.run, args=(ListSink(), controls))
    t.start()
    t.join(0.3)
    assert t.is_alive() and eng.epoch == 4  # paused: no epoch trains
    controls.stop.set()
    t.join(5)
    assert not t.is_alive() and eng.epoch == 4


def test_a_diverging_seed_stops_alone():
    sc = parse_scenario('[run]\nepochs = 3\nseeds = 2\ndevice = "cpu"\n[measure]\nsnapshots = 4\n')
    eng = Engine(sc)
    with torch.no_grad():
        eng.model.weights[0][1].fill_(float("nan"))  # seed 1 is broken from the start
    sink = ListSink()
    eng.run(sink)
    assert [(r.seed, r.epoch) for r in sink.records if r.quantity == Q.SEED_DIVERGED] == [(1, 0)]
    assert not any(r.seed == 1 and r.quantity == Q.LOSS_TRAIN for r in sink.records)
    assert all(math.isfinite(v) for v in sink.series(0, Q.LOSS_TRAIN).values())
    assert sink.series("mean", Q.LOSS_TRAIN) == sink.series(0, Q.LOSS_TRAIN)


def test_pause_stops_at_the_next_step_and_stop_at_the_epoch_boundary():
    """Pausing mid-epoch holds training after the current optimiser step; a stop asked meanwhile still ends the
    epoch (stop and noise changes act at epoch boundaries)."""
    sc = parse_scenario('[run]\nepochs = 5\nseeds = 1\ndevice = "cpu"\n[train]\nbatch_size = 64\n'
                        '[measure]\nsnapshots = 2\n')
    eng = Engine(sc)
    controls = Controls()

    class PauseAtStep3:
        watches_steps, graph_safe = True, False

        def watches_epoch(self, epoch):
            return True

        def after_step(self, step, epoch):
            if step == 3:
                controls.paused.set()

    eng.step_hooks.append(PauseAtStep3())
    t = threading.Thread(target=eng.run, args=(ListSink(), controls))
    t.start()
    deadline = time.monotonic() + 20
    while eng.step < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    assert t.is_alive() and eng.step == 4 and eng.epoch == 0  # held after step 3's update, mid-epoch
    controls.stop.set()
    t.join(20)
    assert not t.is_alive() and eng.epoch == 1 and eng.step == eng.steps_per_epoch == 52


def test_lr_milestones_divide_the_learning_rate():
    """train.lr_milestones (in optimiser steps) and lr_decay: He et al.'s schedule on a tiny run."""
    sc = parse_scenario('[run]\nepochs = 3\nseeds = 2\ndevice = "cpu"\n[train]\noptimizer = "sgd"\nlr = 0.1\n'
                        'momentum = 0.9\nbatch_size = 256\nlr_milestones = [20, 30]\nlr_decay = 0.1\n'
                        '[measure]\nsnapshots = 2\nestimators = []\n[measure.dynamics]\nenabled = false\n')
    eng = Engine(sc)
    seen = {}

    class LrSpy:
        watches_steps, graph_safe = True, False

        def watches_epoch(self, epoch):
            return True

        def after_step(self, step, epoch):
            seen[step] = [g["lr"] for g in eng.optimizer.param_groups]

    eng.step_hooks.append(LrSpy())
    assert eng.run(ListSink())
    assert len(seen) == 3 * 13
    assert all(seen[s] == [0.1] for s in range(20))
    assert all(seen[s] == [pytest.approx(0.01, rel=1e-12)] for s in range(20, 30))
    assert all(seen[s] == [pytest.approx(0.001, rel=1e-12)] for s in range(30, 39))
    assert eng.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3, rel=1e-12)
    plain = Engine(parse_scenario('[run]\nepochs = 1\nseeds = 1\ndevice = "cpu"\n'))
    assert plain.sc.train.lr_milestones == [] and plain.optimizer.param_groups[0]["lr"] == plain.sc.train.lr


def test_engine_parts_get_a_frozen_context_never_the_engine():
    """Back ends, probes, regularisers and graph capture import nothing of the trainer; the context is frozen."""
    import ast
    import dataclasses
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "ibtui" / "engine"
    for path in root.rglob("*.py"):
        if path.name in ("trainer.py", "sweep.py"):
            continue
        names = {n.module for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                 if isinstance(n, ast.ImportFrom) and n.module}
        assert "ibtui.engine.trainer" not in names, path
    eng = Engine(small(epochs=1, seeds=1))
    with pytest.raises(dataclasses.FrozenInstanceError):
        eng.ctx.model = None
    assert eng.ctx.snapshot_steps == {e * len(eng.batches) for e in eng.snapshots}
    assert eng.ctx.steps_per_epoch == len(eng.batches)
