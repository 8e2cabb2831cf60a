"""Snapshot estimators on a worker thread (ibtui.engine.overlap) change nothing but when the work is done.

The same run with the overlap on and off gives the same records in the same order; the deferred estimators
really run on the worker while the next epoch trains; a checkpoint asked for while a snapshot is in flight
waits for it to be emitted.
"""
import dataclasses
import threading
import time

import pytest
import torch
from helpers import ListSink

from ibtui.engine.overlap import MeasureQueue
from ibtui.engine.probes.kde import KdeProbe
from ibtui.engine.trainer import Engine
from ibtui.scenario import load_scenario, with_changes


def szt(**changes):
    sc = load_scenario("szt_tanh")
    return with_changes(sc, {"run.seeds": 3, "run.epochs": 24, "measure.snapshots": 10, "measure.kde.points": 256,
                             "run.device": "cpu", **changes})


def records(sc, worker: bool, sink=None):
    engine = Engine(sc)
    engine.measuring = MeasureQueue(worker)
    sink = sink or ListSink()
    assert engine.run(sink)
    return sink.records


def exact(recs) -> list[str]:
    """Records as text, floats by repr: equal lists mean the same fields, values bit for bit (NaN too)."""
    return [repr(dataclasses.astuple(r)) for r in recs]


def test_the_same_records_in_the_same_order_with_and_without_the_worker():
    sc = szt()
    on, off = records(sc, True), records(sc, False)
    assert len(on) == len(off) > 0
    assert exact(on) == exact(off)
    assert {r.estimator for r in on} >= {"bin30", "kde_upper", "kde_lower"}


@pytest.mark.slow  # 3-5 s: keeps the README's fast set under 3 minutes on 2 cores
def test_two_snapshots_measured_at_once_give_the_same_records(monkeypatch):
    """While training waits for a full queue, the second worker measures the next snapshot beside the first: both
    workers run jobs, at once, and the records are still those of the run without a worker, in order."""
    original = KdeProbe.at_snapshot
    running, most, names = [0], [0], set()
    lock = threading.Lock()

    def slowed(self, snap):  # long enough that the training thread fills the queue and waits
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
            names.add(threading.current_thread().name)
        try:
            time.sleep(0.1)
            return original(self, snap)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(KdeProbe, "at_snapshot", slowed)
    sc = szt(**{"run.epochs": 12, "measure.snapshots": 6})
    engine = Engine(sc)
    engine.measuring = MeasureQueue(True, depth=4, workers=2)
    sink = ListSink()
    assert engine.run(sink)
    assert most[0] == 2 and names == {"ibtui-measure-0", "ibtui-measure-1"}
    assert exact(sink.records) == exact(records(sc, False))


def test_kde_runs_on_the_worker_while_the_next_epoch_trains(monkeypatch):
    seen = []
    original = KdeProbe.at_snapshot

    def spy(self, snap):
        seen.append((threading.current_thread().name, snap.epoch))
        return original(self, snap)

    monkeypatch.setattr(KdeProbe, "at_snapshot", spy)
    records(szt(), True)
    assert seen and all(name.startswith("ibtui-measure") for name, _ in seen)
    seen.clear()
    records(szt(), False)
    assert seen and all(name == threading.current_thread().name for name, _ in seen)


def test_the_compression_bound_reads_the_first_estimators_value():
    """The dynamics probe's input-compression bound (Theorem 1) reads the last hidden layer's I(X;T) of the
    first estimator (binning here): it is computed in the job, after the estimators' sums."""
    from ibtui.engine.probes.dynamics import COMPRESSION_DELTA
    from ibtui.measures.gaussian_bound import input_compression_bound

    engine = Engine(szt())
    values = engine.snapshot_job()[0]()[2]
    last_hidden = str(len(engine.info.layers) - 1)
    mi = values[(last_hidden, "I(X;T)", "bin30")]
    expected = input_compression_bound(mi, int(engine.train_idx.shape[1]), COMPRESSION_DELTA)
    torch.testing.assert_close(values[("", "input_compression_bound", "")], expected.to(mi.dtype))


@pytest.mark.slow  # over 2 s: keeps the README's fast set under 3 minutes on 2 cores
def test_a_due_checkpoint_waits_for_the_snapshot_in_flight(monkeypatch):
    """KDE slowed down so that a snapshot is still in flight at the boundary after it; a sink that needs a
    settled boundary asks for it and gets it at the next one, with every earlier snapshot emitted."""
    original = KdeProbe.at_snapshot

    def slow(self, snap):
        time.sleep(0.2)
        return original(self, snap)

    monkeypatch.setattr(KdeProbe, "at_snapshot", slow)
    sc = szt(**{"run.epochs": 8, "measure.snapshots": 8, "measure.schedule": "linear"})
    engine = Engine(sc)
    engine.measuring = MeasureQueue(True)

    class Settling(ListSink):
        def __init__(self):
            super().__init__()
            self.settled = []
            self.asked = 0

        def progress(self, p):
            super().progress(p)
            if engine.at_boundary:
                emitted = max(r.epoch for r in self.records if r.quantity == "I(X;T)")
                self.settled.append((p.epoch, emitted))
            else:
                self.asked += 1
                engine.request_settle()

    sink = Settling()
    assert engine.run(sink)
    assert sink.asked and sink.settled
    assert all(emitted == max(e for e in engine.snapshots if e <= epoch) for epoch, emitted in sink.settled)
    assert exact(sink.records) == exact(records(sc, False))


def test_an_estimator_error_on_the_worker_reaches_the_training_thread(monkeypatch):
    def broken(self, snap):
        if snap.epoch > 0:
            raise RuntimeError("estimator failed")
        return {}

    monkeypatch.setattr(KdeProbe, "at_snapshot", broken)
    with pytest.raises(RuntimeError, match="estimator failed"):
        records(szt(), True)
    assert not [t for t in threading.enumerate() if t.name.startswith("ibtui-measure")]


def test_the_worker_uses_the_training_threads_torch_thread_count():
    q = MeasureQueue(True)
    q.submit(torch.get_num_threads)
    assert q.drain() == [torch.get_num_threads()]
    q.close()


@pytest.mark.slow  # over 2 s: keeps the README's fast set under 3 minutes on 2 cores
def test_a_noisy_sp_run_gives_the_same_records_with_its_sums_on_the_worker(monkeypatch):
    """SP's noisy forward reads the weights, so it runs at the snapshot; its mixture sums go to the worker."""
    from ibtui.engine.probes import sp as sp_probe

    threads = []
    original = sp_probe.sp_mutual_information

    def spy(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return original(*args, **kwargs)

    monkeypatch.setattr(sp_probe, "sp_mutual_information", spy)
    sc = with_changes(load_scenario("szt_noisy_tanh"), {"run.seeds": 2, "run.epochs": 6, "measure.snapshots": 4,
                                                        "measure.sp.points": 64, "run.device": "cpu"})
    on = records(sc, True)
    assert threads and all(t.startswith("ibtui-measure") for t in threads)
    off = records(sc, False)
    assert exact(on) == exact(off) and any(r.estimator == "sp" for r in on)


def test_snapshots_in_flight_are_bounded_by_count_and_by_bytes():
    """Training may run ahead of the estimators by a bounded number of snapshots holding bounded memory: a
    submit beyond either bound waits for the oldest jobs and hands back their results, in order."""
    def job(value):
        def run():
            time.sleep(0.05)
            return value
        return run

    q = MeasureQueue(True, depth=2, max_bytes=100)
    assert q.submit(job(1), 10) == [] and q.submit(job(2), 10) == []  # two in flight: no wait
    assert q.submit(job(3), 10) == [1]  # a third waits for the oldest
    assert q.drain() == [2, 3]
    assert q.submit(job(4), 60) == []
    assert q.submit(job(5), 60) == [4]  # 120 bytes would exceed 100: waits although only one is in flight
    assert q.drain() == [5]
    q.close()
