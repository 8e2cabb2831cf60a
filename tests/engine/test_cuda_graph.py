"""Captured training epochs (run.cuda_graph): what a replayed epoch reads must equal what an eager one reads.

On the CPU: the device step counter hashes like the Python step, steps driven by it train identically,
the epoch's inputs stay at one address, and only graph-safe hooks let an epoch be captured.
On a GPU (`gpu`): the captured engine trains like the eager one and its steps make no host syncs.
"""
import pytest
import torch

from ibtui.engine import rng
from ibtui.engine.cuda_graph import EpochGraphs
from ibtui.engine.probes.dynamics import DynamicsProbe
from ibtui.engine.orthonormal import OrthonormalPenalty
from ibtui.engine.trainer import Engine
from ibtui.scenario import parse_scenario
from helpers import ListSink


def scenario(device="cpu", graph=False, epochs=6, extra=""):
    """A graph captures PyTorch's step (the compiled step is for CPUs), so on the CPU these tests run that one."""
    return parse_scenario(
        f'[run]\nepochs = {epochs}\nseeds = 3\ndevice = "{device}"\ncuda_graph = {str(graph).lower()}\n'
        'compiled_step = false\n'
        '[model]\nnoise_levels = [0.05, 0.0]\northonormal = 0.01\n'
        f'[train]\nbatch_size = 500\n[measure]\nsnapshots = 3\nestimators = ["binning"]\n{extra}')


def test_a_tensor_counter_hashes_like_the_same_int():
    seeds = torch.tensor([0, 5, 9])
    for step in (0, 7, 2**33 + 5):
        a = rng.normal(seeds, (rng.STREAM_NOISE, step, 2), (4, 6))
        b = rng.normal(seeds, (rng.STREAM_NOISE, torch.tensor(step), 2), (4, 6))
        assert torch.equal(a, b)


def test_steps_counted_on_the_device_train_exactly_like_steps_counted_in_python():
    eager, counted = Engine(scenario()), Engine(scenario())
    assert eager.beta > 0  # the noise depends on the step counter
    for _ in range(3):
        eager.train_epoch()
        hooks = counted.start_epoch()
        counted._steps(torch.tensor(counted.step), hooks)  # what a captured epoch runs
        counted.step += counted.steps_per_epoch
        counted.epoch += 1
    assert eager.step == counted.step == 3 * eager.steps_per_epoch
    for a, b in zip(eager.model.parameters(), counted.model.parameters()):
        assert torch.equal(a, b)


def test_the_epoch_inputs_stay_at_one_address():
    e = Engine(scenario())
    e.train_epoch()
    x0, y0 = e.backend.x_epoch.data_ptr(), e.backend.y_epoch.data_ptr()
    first = e.backend.x_epoch.clone()
    e.train_epoch()
    assert (e.backend.x_epoch.data_ptr(), e.backend.y_epoch.data_ptr()) == (x0, y0)
    assert not torch.equal(e.backend.x_epoch, first)  # new order, same buffer
    order = e.train_idx.gather(1, rng.permutations(e.seed_tensor, (rng.STREAM_BATCH, 1), e.train_idx.shape[1]))
    assert torch.equal(e.backend.x_epoch, e.data.x.reshape(len(e.data.x), -1)[order].transpose(1, 2))
    assert torch.equal(e.backend.y_epoch, e.data.y[order])


def test_only_graph_safe_hooks_allow_a_captured_epoch():
    e = Engine(scenario(extra="[measure.dynamics]\nenabled = true\n"))
    dyn = next(p for p in e.probes if isinstance(p, DynamicsProbe))
    ortho = next(h for h in e.regularizers if isinstance(h, OrthonormalPenalty))
    assert ortho.graph_safe and not dyn.graph_safe
    watched = [ep for ep in range(6) if dyn.watches_epoch(ep)]
    assert watched == sorted(ep - 1 for ep in e.snapshots if ep > 0)
    graphs = EpochGraphs.__new__(EpochGraphs)  # covers() needs no CUDA state
    graphs.error = None
    assert graphs.covers([ortho]) and not graphs.covers([ortho, dyn])
    graphs.error = "capture failed"
    assert not graphs.covers([ortho])


def test_graphs_are_off_on_the_cpu_even_when_asked_for():
    e = Engine(scenario(graph=True))
    assert e.graphs is None
    e.train_epoch()
    assert e.epoch == 1


@pytest.mark.gpu
def test_captured_epochs_train_like_eager_epochs_on_a_gpu():
    sink_records = {}
    engines = {}
    for graph in (False, True):
        e = Engine(scenario("cuda", graph, epochs=30))
        sink = ListSink()
        assert e.run(sink)
        records = sink.records
        engines[graph], sink_records[graph] = e, records
    assert engines[True].graphs.replays > 0 and engines[True].graphs.error is None
    for a, b in zip(engines[False].model.parameters(), engines[True].model.parameters()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    for a, b in zip(sink_records[False], sink_records[True]):
        assert (a.seed, a.epoch, a.layer, a.quantity) == (b.seed, b.epoch, b.layer, b.quantity)


@pytest.mark.gpu
def test_training_steps_make_no_host_syncs_on_a_gpu():
    for graph in (False, True):
        e = Engine(scenario("cuda", graph, epochs=10))
        e.train_epoch()
        e.train_epoch()  # the graph path has warmed up and captured by now
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for _ in range(3):
                e.train_epoch()
        finally:
            torch.cuda.set_sync_debug_mode("default")


def test_an_epoch_with_a_learning_rate_change_is_not_replayed():
    """Graphs are keyed by (β, lr); an epoch across a train.lr_milestones step runs eagerly."""
    sc = parse_scenario('[run]\nepochs = 4\nseeds = 1\ndevice = "cpu"\n[train]\nbatch_size = 500\n'
                        'lr_milestones = [10]\n[measure]\nsnapshots = 2\nestimators = []\n'
                        '[measure.dynamics]\nenabled = false\n')
    e = Engine(sc)
    assert e.steps_per_epoch == 7
    e.graphs = EpochGraphs.__new__(EpochGraphs)  # _replayable() needs no CUDA state
    e.graphs.error = None
    assert e._replayable([])  # steps 0–6: one learning rate
    e.step = 7
    assert not e._replayable([])  # steps 7–13 cross the milestone at 10
    e.step = 14
    assert e._replayable([])
