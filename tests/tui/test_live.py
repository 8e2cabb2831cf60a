"""Issue 31 item 6, the app stays current: the scenario's name from the first frame, how far the measuring worker
is behind training, a short measuring queue in the app (deep headless), an ETA that counts the worker's time, and
`q` prompt with a slowed estimator."""
from __future__ import annotations

import math
import threading
import time

import pytest

pytest.importorskip("textual")

from fake_engine import FakeEngine
from tui_helpers import wait_for

from ibtui.engine.overlap import LIVE_LAG_S, MAX_IN_FLIGHT, MeasureQueue
from ibtui.records import EtaEstimator, Progress, Record
from ibtui.tui.app import IbtuiApp
from ibtui.tui.panes.status import RunFlags, status_lines
from ibtui.tui.state import TuiState, ViewState


def status(app) -> str:
    return app.query_one("#status").text


async def test_the_first_frame_names_the_scenario():
    release = threading.Event()

    def factory(say):
        release.wait(10)
        return FakeEngine(epochs=50, delay=0.002), []

    app = IbtuiApp(factory=factory, fps=10, name="szt_tanh")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: "STARTING" in status(app), what="the first frame")
        assert status(app).startswith("szt_tanh") and "starting" not in status(app).split("\n")[0]
        release.set()
        await pilot.press("q")


async def test_q_while_the_engine_is_built_stops_the_build_at_its_next_stage():
    loading, built = threading.Event(), []

    def factory(say):
        say("loading torch…")
        loading.set()
        app.controls.stop.wait(10)  # an import that cannot be interrupted, ending after the key
        say("loading the data and building the model…")
        built.append(True)
        return FakeEngine(epochs=50), []

    app = IbtuiApp(factory=factory, fps=10, name="szt_tanh")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, loading.is_set, what="the first stage")
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, what="exit", timeout=5)
    assert built == [] and app.return_code == 0


def behind_view(measuring: int):
    """A live run at epoch 300 with 11 snapshots drawn and `measuring` in flight."""
    engine = FakeEngine(epochs=1000)
    state = TuiState()
    state.start(engine.info)
    for epoch in range(11):
        state.emit([Record("fake", "mean", epoch, epoch, "1", "I(X;T)", "bin30", 1.0)])
    state.progress(Progress(300, 1000, 3, 0.0, 11, 40, train_s=3.0, trained=300, measure_s=1.0, measured=11,
                            measuring=measuring, measure_job_s=2.0))
    return state.view()


def test_the_status_line_says_how_far_the_worker_is_behind():
    _, second = status_lines(behind_view(5), ViewState(), RunFlags())
    assert "measuring snapshot 12, training at epoch 300" in second
    _, second = status_lines(behind_view(1), ViewState(), RunFlags())  # one in flight: the worker keeps up
    assert "measuring snapshot" not in second


def test_the_eta_counts_the_workers_time_when_it_is_behind():
    # training: 700 epochs at 10 ms + 29 snapshots at 0.1 s of the training thread = 9.9 s; the worker: (29 left + 5
    # in flight) × 2 s = 68 s. The run ends when the worker does.
    p = Progress(300, 1000, 3, 0.0, 11, 40, train_s=3.0, trained=300, measure_s=1.1, measured=11, measuring=5,
                 measure_job_s=2.0)
    assert math.isclose(p.eta_s, 34 * 2.0)
    eta = EtaEstimator()
    eta.update(Progress(299, 1000, 3, 0.0, 11, 40, train_s=2.99, trained=299, measure_s=1.1, measured=11))
    eta.update(p)
    assert math.isclose(eta.eta_s(), 68.0)
    fast = Progress(300, 1000, 3, 0.0, 11, 40, train_s=3.0, trained=300, measure_s=1.1, measured=11, measuring=1,
                    measure_job_s=0.05)  # the worker keeps up: training's share decides
    assert math.isclose(fast.eta_s, 700 * 0.01 + 29 * 0.1)


def test_the_live_queue_holds_a_few_seconds_of_snapshots_and_headless_a_deeper_one():
    def sizes(max_lag_s: float, workers: int = 1) -> list[int]:
        q = MeasureQueue(True, workers=workers)
        q.max_lag_s = max_lag_s
        seen = []
        for _ in range(8):
            q.submit(lambda: time.sleep(0.1))
            seen.append(q.in_flight)
        q.drain()
        q.close()
        return seen

    live = sizes(0.25)  # 0.1 s a job: at most 3 in flight (one before the first job's time is known)
    assert live[0] == 1 and max(live) <= 3
    # two workers (the second runs while this thread waits): jobs come through twice as fast, so the same lag
    # holds about twice as many
    assert max(sizes(0.25, workers=2)) <= 6
    assert max(sizes(math.inf)) == 8  # headless: up to MAX_IN_FLIGHT
    assert LIVE_LAG_S <= 5 and MAX_IN_FLIGHT >= 8


@pytest.mark.slow
async def test_q_ends_the_app_within_two_seconds_with_snapshots_queued(monkeypatch):
    from ibtui.engine.probes.kde import KdeProbe
    from ibtui.engine.trainer import Engine
    from ibtui.scenario import load_scenario, with_changes

    real = KdeProbe.at_snapshot

    def slow(self, snap):  # the test double: a slow measuring core
        time.sleep(1.0)
        return real(self, snap)

    monkeypatch.setattr(KdeProbe, "at_snapshot", slow)
    engine = Engine(with_changes(load_scenario("szt_tanh"), {
        "run.seeds": 2, "run.epochs": 400, "measure.snapshots": 40, "measure.schedule": "linear",
        "measure.kde.points": 128, "run.device": "cpu"}))
    engine.measuring = MeasureQueue(True)
    app = IbtuiApp(engine, fps=10)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: engine.measuring.in_flight >= 2, what="snapshots queued", timeout=30)
        t0 = time.perf_counter()
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, what="exit", timeout=10)
    assert time.perf_counter() - t0 < 2.0 and app.return_code == 0
    assert app.state.view().finished is False
