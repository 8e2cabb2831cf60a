"""The SP probe: each seed averages over its own fixed inputs with its own draws (Goldfeld et al. 2019's SP)."""
import pytest
import torch
from helpers import ListSink

from ibtui.engine.probes.sp import fixed_inputs
from ibtui.engine.trainer import Engine
from ibtui.scenario import load_scenario, with_changes


def test_fixed_inputs_are_the_seeds_own_and_do_not_depend_on_the_other_seeds():
    both = fixed_inputs(torch.tensor([4, 5]), 4096, 64)
    alone = fixed_inputs(torch.tensor([5]), 4096, 64)
    assert torch.equal(both[1], alone[0]) and torch.equal(both[1], fixed_inputs(torch.tensor([5]), 4096, 64)[0])
    assert not torch.equal(both[0], both[1])
    assert all(s.numel() == 64 and s.unique().numel() == 64 and int(s.max()) < 4096 for s in both)
    assert fixed_inputs(torch.tensor([4, 5]), 4096, 0) == [None, None]
    assert fixed_inputs(torch.tensor([4]), 100, 100) == [None]


def _sp(first_seed: int, seeds: int) -> dict:
    sc = with_changes(load_scenario("szt_noisy_tanh"), {
        "run.seeds": seeds, "run.first_seed": first_seed, "run.epochs": 1, "measure.snapshots": 2,
        "measure.estimators": ["sp"], "measure.sp.points": 32, "measure.sp.samples": 2, "measure.sp.mc": 2,
        "data.mi_points": "test", "measure.dynamics.enabled": False, "run.device": "cpu"})
    sink = ListSink()
    assert Engine(sc).run(sink)
    return {(r.epoch, r.layer, r.quantity): r.value for r in sink.records if r.estimator == "sp" and r.seed == 1}


@pytest.mark.slow
def test_a_seeds_sp_does_not_depend_on_the_seeds_beside_it():
    """Seed 1's SP (its inputs, noisy passes and Monte Carlo draws) is the same run alone or beside seed 0."""
    alone, beside = _sp(1, 1), _sp(0, 2)
    assert alone and alone.keys() == beside.keys()
    assert all(abs(alone[k] - beside[k]) <= 1e-4 for k in alone), {k: (alone[k], beside[k]) for k in alone}
