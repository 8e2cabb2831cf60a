"""measure.snapshot_unit = "step": snapshots log-spaced over optimiser steps, inside epochs, at fractional epochs.

Image runs need it (issue 32 item 5): Shwartz-Ziv, Painsky & Tishby (2019) plot against iterations, and a
transition at ~160 iterations falls inside the first epoch of a 469-step-an-epoch MNIST run.
"""
from __future__ import annotations

import math

import pytest
import torch

from ibtui import quantities as Q
from ibtui.engine.probes.dynamics import snr_windows
from ibtui.engine.schedule import snapshot_epochs, snapshot_steps
from ibtui.engine.trainer import Engine
from ibtui.measures.gaussian_bound import BoundWindow
from ibtui.measures.gradients import detect_transition
from ibtui.records import epoch_at, parse_epoch
from ibtui.scenario import ScenarioError, load_scenario

from conftest import REPO
from helpers import ListSink

SZT = REPO / "scenarios" / "szt_tanh.toml"
TINY = ["run.seeds=2", "run.epochs=2", 'run.device="cpu"', "measure.snapshots=12", 'measure.estimators=["binning"]',
        "run.compiled_step=false"]


def engine(unit: str, extra: tuple[str, ...] = ()) -> Engine:
    return Engine(load_scenario(SZT, [*TINY, f'measure.snapshot_unit="{unit}"', *extra]))


def test_step_schedule_starts_at_step_one_and_ends_at_the_last_step():
    steps = snapshot_steps(100, 469, 40, "log", "step")  # mnist_fc at medium: 100 epochs of 469 steps
    assert len(steps) == 40 and steps[0] == 0 and steps[-1] == 100 * 469
    assert {1, 2, 3, 4, 5} <= set(steps) and sum(s <= 10 for s in steps) >= 8  # the first ten iterations
    assert steps[:12] == snapshot_epochs(46900, 40)[:12]  # the epoch schedule, over steps
    assert snapshot_steps(3, 7, 4, "linear", "step") == [0, 7, 14, 21]  # linspace(0, 21, 4)
    assert snapshot_steps(100, 32, 40, "log", "epoch") == [32 * e for e in snapshot_epochs(100, 40)]


def test_epoch_of_a_step_is_whole_at_an_epochs_end_and_reads_back_exactly():
    for spe in (1, 7, 32, 469):
        for step in range(0, 3 * spe + 1):
            e = epoch_at(step, spe)
            assert isinstance(e, int) == (step % spe == 0)
            assert e == step / spe and parse_epoch(repr(e)) == e and type(parse_epoch(repr(e))) is type(e)
    with pytest.raises(ValueError):
        parse_epoch("nan")


def test_windows_are_the_steps_since_the_previous_snapshot_at_most_an_epoch():
    steps = [0, 1, 2, 3, 5, 8, 12, 20, 30]
    assert snr_windows(steps, 10, 0) == [(0, 1, 0.1), (1, 2, 0.2), (2, 3, 0.3), (3, 5, 0.5), (5, 8, 0.8),
                                         (8, 12, 1.2), (12, 20, 2), (20, 30, 3)]
    assert snr_windows([0, 4, 30], 10, 0) == [(0, 4, 0.4), (20, 30, 3)]  # at most an epoch
    assert snr_windows(steps, 10, 3) == [(0, 1, 0.1), (1, 2, 0.2), (2, 3, 0.3), (3, 5, 0.5), (5, 8, 0.8),
                                         (9, 12, 1.2), (17, 20, 2), (27, 30, 3)]


def test_scenario_refuses_an_unknown_unit():
    with pytest.raises(ScenarioError, match="measure.snapshot_unit.*use one of: epoch, step"):
        load_scenario(SZT, ['measure.snapshot_unit="iteration"'])


def test_step_run_snapshots_inside_epoch_one_and_trains_as_the_epoch_run():
    """Snapshots after steps 1, 2, 3, … at epochs step/7 (szt_tanh: 7 steps an epoch); one-step windows have no
    covariance (SNR NaN); measuring inside epochs leaves training as it was: the same weights and the same values
    at the epochs both runs measure."""
    step_run, epoch_run = engine("step"), engine("epoch")
    spe = step_run.steps_per_epoch
    assert spe == 7
    runs = {}
    for eng in (step_run, epoch_run):
        sink = ListSink()
        assert eng.run(sink) is True
        runs[eng] = sink
    for a, b in zip(step_run.model.state_dict().values(), epoch_run.model.state_dict().values()):
        assert torch.equal(a, b)
    records = runs[step_run].records
    steps = sorted({r.step for r in records})
    assert steps == snapshot_steps(2, spe, 12, "log", "step") and {1, 2, 3, 4, 5, 6} <= set(steps)
    for r in records:
        assert r.epoch == r.step / spe and isinstance(r.epoch, int) == (r.step % spe == 0)
    assert step_run.info.snapshot_epochs == tuple(epoch_at(s, spe) for s in steps)
    snr = {r.step: r.value for r in records if r.seed == 0 and r.quantity == Q.SNR and r.layer == "1"}
    windows = dict((end, end - first) for first, end, _ in snr_windows(steps, spe, 0))
    for step, value in snr.items():
        assert math.isnan(value) == (step == 0 or windows[step] < 2), (step, value)
    whole = {(r.epoch, r.seed, r.layer, r.quantity, r.estimator): r.value for r in records
             if isinstance(r.epoch, int) and r.quantity in (Q.LOSS_TEST, Q.ACC_TRAIN, Q.MI_XT, Q.WEIGHT_NORM)}
    other = {(r.epoch, r.seed, r.layer, r.quantity, r.estimator): r.value for r in runs[epoch_run].records
             if r.quantity in (Q.LOSS_TEST, Q.ACC_TRAIN, Q.MI_XT, Q.WEIGHT_NORM)}
    shared = whole.keys() & other.keys()
    assert {0, 1, 2} <= {k[0] for k in shared} and all(whole[k] == other[k] for k in shared)


def test_fractional_epochs_round_trip_through_the_export(tmp_path):
    from ibtui.api import run

    csv = tmp_path / "step.csv"
    got = run("szt_tanh", set={"run.seeds": 2, "run.epochs": 2, "measure.snapshots": 8, "run.device": "cpu",
                               "measure.estimators": ["binning"], "measure.snapshot_unit": "step"}, export=csv)
    epochs, _ = got.series(Q.LOSS_TRAIN)
    assert epochs.dtype.kind == "f" and list(epochs) == [s / 7 for s in snapshot_steps(2, 7, 8, "log", "step")]
    rows = csv.read_text().splitlines()[1:]
    texts = {(row.split(",")[3], int(row.split(",")[4])) for row in rows}
    assert ("0.14285714285714285", 1) in texts and ("2", 14) in texts  # repr of 1/7; whole epochs as integers
    assert all(parse_epoch(t) == s / 7 for t, s in texts)


def test_transition_on_fractional_epochs_is_the_one_on_steps():
    """The detector works on log epoch: epochs step/469 find the same snapshot as steps do (a shift in log)."""
    steps = torch.tensor(snapshot_steps(100, 469, 60, "log", "step")[1:], dtype=torch.float64)
    snr = torch.where(steps < 160, 20.0, 20.0 * (steps / 160) ** -1.5)[None]  # a kink at 160 iterations
    at_steps = float(detect_transition(steps, snr))
    at_epochs = float(detect_transition(steps / 469, snr))
    assert 100 <= at_steps <= 400 and at_epochs == at_steps / 469


def test_bound_freezes_at_the_snapshot_nearest_a_fractional_transition():
    """With snapshots at fractions of an epoch, W* comes from the one nearest the transition in log epoch (a clamp
    at 0.5 epoch would merge every snapshot of the first half epoch with epoch 0)."""
    epochs = [0, 1 / 469, 2 / 469, 10 / 469, 100 / 469, 300 / 469, 1]
    bound = BoundWindow(1, 1, epoch_floor=0.5 / 469)
    for e in epochs:  # the transition is declared at the last snapshot, as the detector does some snapshots after
        w = torch.full((1, 2, 2), float(e))
        declared = 10.5 / 469 if e == epochs[-1] else math.nan
        bound.update(e, [w], torch.ones(1, 1), transition_epoch=torch.tensor([[declared]]))
    assert float(bound.frozen_epoch) == 10 / 469 and float(bound.w_star[0][0, 0, 0]) == pytest.approx(10 / 469)


@pytest.mark.slow  # two ResNet-32 runs: over 5 s
def test_resnet_snapshots_inside_epochs_leave_batch_norm_training_as_it_was(tmp_path):
    """The autograd back end's snapshot pass puts the model in eval mode; inside an epoch the engine puts it back,
    so batch norm keeps training on batch statistics: the same weights and running statistics as the epoch run."""
    from engine.test_images_engine import write_cifar100

    folder = write_cifar100(tmp_path, 40, 12)
    states = []
    for unit in ("step", "epoch"):
        sc = load_scenario(REPO / "scenarios" / "cifar100_resnet32.toml", [
            "run.seeds=2", "run.epochs=2", 'run.device="cpu"', "measure.snapshots=6", "measure.estimators=[]",
            "train.batch_size=10", f'data.dir="{folder}"', f'measure.snapshot_unit="{unit}"'])
        eng = Engine(sc)
        sink = ListSink()
        assert eng.run(sink) is True
        if unit == "step":
            assert sorted({r.step for r in sink.records}) == [0, 1, 2, 3, 5, 8] and eng.steps_per_epoch == 4
        states.append(eng.model.state_dict())
    assert states[0].keys() == states[1].keys() and any("running_mean" in k for k in states[0])
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k
