"""A stop (`q`, a signal) is prompt whatever the measuring queue holds: snapshots not yet measured are dropped,
the ones finished are kept, and `ibtui resume` still ends with the export of the run that never stopped."""
from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
from helpers import ListSink

from conftest import cli
from ibtui.controls import Controls
from ibtui.engine import overlap
from ibtui.engine.overlap import MeasureQueue
from ibtui.engine.probes.kde import KdeProbe
from ibtui.engine.trainer import Engine
from ibtui.scenario import load_scenario, with_changes
from ibtui.sinks.checkpoint import CheckpointSink
from ibtui.sinks.csv import checkpoint_path, sidecar_path


def slowed_kde(monkeypatch, seconds: float) -> None:
    """The test double: the KDE probe's snapshot work sleeps first, as on a slow measuring core."""
    real = KdeProbe.at_snapshot

    def slow(self, snap):
        time.sleep(seconds)
        return real(self, snap)

    monkeypatch.setattr(KdeProbe, "at_snapshot", slow)


def szt(**changes):
    return with_changes(load_scenario("szt_tanh"), {
        "run.seeds": 2, "run.epochs": 400, "measure.snapshots": 40, "measure.schedule": "linear",
        "measure.kde.points": 128, "run.device": "cpu", **changes})


def test_a_stop_returns_within_the_grace_whatever_the_queue_holds(monkeypatch):
    slowed_kde(monkeypatch, 1.5)  # draining 5 queued snapshots would take 7.5 s
    engine = Engine(szt())
    engine.measuring = MeasureQueue(True)
    controls, sink, result = Controls(), ListSink(), {}
    thread = threading.Thread(target=lambda: result.setdefault("finished", engine.run(sink, controls)))
    thread.start()
    while engine.measuring.in_flight < 5 and thread.is_alive():
        time.sleep(0.01)
    assert engine.measuring.in_flight >= 5
    t0 = time.perf_counter()
    controls.stop.set()
    thread.join(10)
    took = time.perf_counter() - t0
    assert result == {"finished": False} and took < overlap.STOP_GRACE_S + overlap.CLOSE_WAIT_S + 0.5
    assert not engine.at_boundary  # snapshots were dropped: no checkpoint may be taken here
    measured = sorted({r.epoch for r in sink.records if r.quantity == "I(X;T)" and r.estimator == "kde_upper"})
    snaps = sorted(engine.snapshots)
    assert measured == snaps[:len(measured)] and len(measured) < len(snaps)  # a prefix: the finished ones, in order
    assert sink.closed is None  # the engine leaves closing to its caller (the CSV keeps what was emitted)


def test_a_stop_with_an_empty_queue_is_a_checkpoint_boundary():
    engine = Engine(szt(**{"run.epochs": 6, "measure.snapshots": 3}))
    engine.measuring = MeasureQueue(True)
    controls, sink = Controls(), ListSink()

    class StopAt3(ListSink):
        def progress(self, p):
            if p.epoch == 3:
                controls.stop.set()

    assert not engine.run(StopAt3(), controls)
    assert engine.epoch == 3 and engine.at_boundary  # the snapshot in flight finished within the grace


@pytest.mark.slow
def test_resume_after_a_stop_with_a_full_queue_ends_byte_identical(tmp_path, monkeypatch):
    """SIGTERM while snapshots are queued (KDE slowed to 1 s a snapshot, so that two workers cannot finish them
    within the stop's grace): they are dropped, no checkpoint is written at the stop, and resume continues from
    the last periodic one to the uninterrupted export."""
    slowed_kde(monkeypatch, 1.0)
    args = ["szt_tanh", "--device", "cpu", "-q", "--threads", "1", "--set", "run.seeds=2", "--set", "run.epochs=300",
            "--set", "measure.snapshots=24", "--set", "measure.schedule=\"linear\"", "--set", "measure.kde.points=128",
            "--set", "run.checkpoint_every=1.0"]
    full, part = tmp_path / "full.csv", tmp_path / "part.csv"
    assert cli(*args, "-o", full).returncode == 0
    real, seen = CheckpointSink.progress, {"epochs": 0, "queued": 0}

    def progress(self, p):
        real(self, p)
        seen["epochs"] += 1
        if self.saved_epoch is not None and p.measuring >= 3 and not seen["queued"]:
            seen["queued"] = p.measuring
            os.kill(os.getpid(), signal.SIGTERM)

    with monkeypatch.context() as m:
        m.setattr(CheckpointSink, "progress", progress)
        t0 = time.perf_counter()
        res = cli(*args, "-o", part)
        assert res.returncode == 143, res.stderr
    assert seen["queued"] >= 3 and checkpoint_path(part).is_file()
    assert len(part.read_bytes()) < len(full.read_bytes())
    res = cli("resume", part, "--headless", "-q")
    assert res.returncode == 0, res.stderr
    assert part.read_bytes() == full.read_bytes()
    meta = json.loads(sidecar_path(part).read_text())
    assert meta["finished"] is True and meta["resumes"][0]["from_epoch"] < seen["epochs"]  # an earlier checkpoint


SLOW_RUN = """
import sys, time
from ibtui.engine.probes.kde import KdeProbe
real = KdeProbe.at_snapshot
def slow(self, snap):
    time.sleep(5.0)
    return real(self, snap)
KdeProbe.at_snapshot = slow
from ibtui.cli import main
main(sys.argv[1:])
"""


@pytest.mark.slow
def test_sigterm_ends_a_headless_process_within_two_seconds_with_snapshots_queued(tmp_path):
    """A real process (`ibtui` with a measuring job that takes 5 s): once the first snapshots are queued, SIGTERM
    ends it within 2 s, exit 143, the CSV valid and the sidecar unfinished."""
    import subprocess
    import sys

    from conftest import REPO

    out = tmp_path / "run.csv"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_RUN, "szt_tanh", "--headless", "--threads", "1", "--device",
                             "cpu", "--set", "run.seeds=2", "--set", "measure.kde.points=256", "-o", str(out),
                             "--progress-every", "0.2"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 120
        while not out.is_file() and time.monotonic() < deadline:  # the export exists once the run has started
            time.sleep(0.1)
        time.sleep(3.0)  # a few snapshots queued behind the first one's 5 s
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        took = time.monotonic() - t0
    finally:
        proc.kill()
    assert proc.returncode == 143 and took < 2.0, (took, proc.stderr.read())
    meta = json.loads(sidecar_path(out).read_text())
    assert meta["finished"] is False
    assert out.read_text().count("\n") >= 1
