"""Issue 15, the app's first minutes: the engine built in the worker (first frame at once, errors exit 2), the
ETA from the schedule, headless log lines, the footer and help at small sizes, every sweep point kept, and
the panes on the records of a tiny real engine run (not only the fake's)."""
from __future__ import annotations

import io
import math
import threading
from dataclasses import replace

import pytest

pytest.importorskip("textual")

from rich.console import Console
from fake_engine import FakeEngine
from tui_helpers import RecordingSink, screen_text, wait_for

from ibtui.controls import Controls
from ibtui.errors import IbtuiError
from ibtui.records import Progress, Sink
from ibtui.sinks.progress import ProgressSink, describe
from ibtui.tui.app import IbtuiApp
from ibtui.tui.help import HelpScreen
from ibtui.tui.state import TuiState


def status(app) -> str:
    return app.query_one("#status").text


# ---------------------------------------------------------------------------------------------- ETA
def test_eta_counts_epochs_and_snapshots_left_at_their_own_cost():
    # 10 epochs trained in 1 s (0.1 s each), 10 snapshots measured in 5 s (0.5 s each); 90 epochs and 20 snapshots left
    p = Progress(10, 100, 4, 0.0, snapshots_done=10, snapshots_total=30, train_s=1.0, trained=10, measure_s=5.0,
                 measured=10)
    assert math.isclose(p.eta_s, 90 * 0.1 + 20 * 0.5)
    assert math.isclose(p.seed_epochs_per_s, 40.0)
    assert math.isnan(Progress(0, 100, 4, 0.0).eta_s) and Progress(100, 100, 4, 0.0).eta_s == 0.0


def test_after_the_last_epoch_the_eta_counts_the_snapshots_still_measured():
    """Training may run ahead of the measuring worker (ibtui.engine.overlap): after the last epoch the ETA is the
    snapshots still in flight at the worker's mean time a snapshot, in Progress and in the estimator the app and
    the progress bar use, and the engine reports it after each of those snapshots, down to 0."""
    from ibtui.records import EtaEstimator

    p = Progress(100, 100, 4, 0.0, 30, 30, train_s=10.0, trained=100, measuring=3, measure_job_s=0.5)
    assert math.isclose(p.eta_s, 1.5)
    eta = EtaEstimator()
    eta.update(Progress(99, 100, 4, 0.0, 30, 30, train_s=9.9, trained=99))
    eta.update(p)
    assert math.isclose(eta.eta_s(), 1.5)
    assert math.isnan(Progress(100, 100, 4, 0.0, measuring=2).eta_s)  # no snapshot timed yet: unknown

    from ibtui.engine.trainer import Engine
    from ibtui.records import Sink
    from ibtui.scenario import load_scenario, with_changes

    class Reports(Sink):
        def __init__(self):
            self.seen = []

        def progress(self, q):
            self.seen.append((q.epoch, q.measuring))

    sc = with_changes(load_scenario("szt_tanh"), {"run.seeds": 2, "run.epochs": 6, "measure.snapshots": 6,
                                                  "measure.schedule": "linear", "measure.estimators": ["binning"]})
    engine = Engine(sc)
    sink = Reports()
    assert engine.run(sink)
    tail = [m for e, m in sink.seen if e == 6]
    assert tail[-1] == 0 and tail == sorted(tail, reverse=True)  # counts down to none left


def test_eta_of_the_fake_engine_is_close_to_the_time_it_takes():
    class Clock(Sink):
        def __init__(self):
            self.first: tuple[float, float] | None = None

        def progress(self, p):
            import time

            if p.epoch == 20:
                self.first = (time.monotonic(), p.eta_s)

    import time

    clock = Clock()
    eng = FakeEngine(epochs=200, delay=0.002, snapshots=40)
    eng.run(clock, Controls())
    end = time.monotonic()
    t20, eta = clock.first
    assert 0.5 * (end - t20) <= eta <= 1.5 * (end - t20)


# ---------------------------------------------------------------------------------------------- headless
class TwoPoints:
    """A sweep of two points of the fake engine: records carry `sweep`, the info lists every point."""

    def __init__(self, epochs=30, delay=0.0):
        self.engines = [FakeEngine(epochs=epochs, delay=delay, snapshots=8) for _ in range(2)]
        self.labels = ("train.batch_size=32", "train.batch_size=64")
        self.info = replace(self.engines[0].info, sweep=self.labels[0], sweep_points=self.labels)

    def run(self, sink, controls=None):
        controls = controls or Controls()
        for label, eng in zip(self.labels, self.engines):
            eng.info = replace(eng.info, sweep=label, sweep_points=self.labels)
            if not eng.run(_Relabel(sink, label), controls):
                return False
        return True


class _Relabel(Sink):
    def __init__(self, sink, label):
        self.sink, self.label = sink, label

    def start(self, info):
        self.sink.start(info)

    def emit(self, records):
        self.sink.emit([replace(r, sweep=self.label) for r in records])

    def progress(self, p):
        self.sink.progress(p)


def test_headless_log_lines_are_whole_and_the_description_is_printed_once():
    out = io.StringIO()
    sink = ProgressSink(Console(file=out, force_terminal=False, width=40), every=0.0)
    src = TwoPoints()
    src.run(sink)
    sink.close(True)
    lines = out.getvalue().splitlines()
    assert sum("fake engine: the numbers are synthetic" in line for line in lines) == 1  # notes once, not per point
    assert sum(line.startswith("fake: 3 seeds") for line in lines) == 1
    assert any(line == "sweep point 2/2: train.batch_size=64" for line in lines)
    progress = [line for line in lines if line.startswith("ibtui: [")]
    assert progress and all("snapshots" in line and "seed-epochs/s" in line and "ETA" in line for line in progress)
    assert max(map(len, progress)) > 40 and not any("…" in line for line in lines)  # never cut to the width
    assert lines[-1].endswith("· finished")


def test_description_words():
    info = FakeEngine(epochs=10, seeds=(0,)).info
    assert describe(info).startswith("fake: 1 seed on ")  # not "1 seeds"
    assert "estimators:" not in describe(replace(info, estimator_settings={}))  # no empty "estimators: "


# ---------------------------------------------------------------------------------------------- launch
async def test_first_frame_comes_before_the_engine_and_says_what_loads():
    release = threading.Event()

    def factory(say):
        say("loading torch…")
        release.wait(10)
        say("building the model…")
        return FakeEngine(epochs=2000, delay=0.004), []

    app = IbtuiApp(factory=factory, fps=10)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: "loading torch…" in status(app), what="the loading stage")
        assert status(app).split("\n")[1].startswith("STARTING")
        await wait_for(pilot, lambda: "quit" in screen_text(app), what="the footer")
        assert "information plane" in screen_text(app) and "quit" in screen_text(app)  # the frame is there
        release.set()
        await wait_for(pilot, lambda: app.view.snapshots >= 2, what="snapshots")
        assert "STARTING" not in status(app) and "loading" not in status(app)
        await pilot.press("q")
    assert app.return_code == 0


async def test_a_factory_error_ends_the_app_with_its_sentence_and_code_2():
    def factory(say):
        raise IbtuiError("data.dir = /nowhere: no MNIST files there; set data.dir or $IBTUI_DATA.")

    app = IbtuiApp(factory=factory, fps=10)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: not app.is_running, what="exit")
    assert app.return_code == 2 and app.exit_message.startswith("data.dir = /nowhere")


# ---------------------------------------------------------------------------------------------- keys and sizes
@pytest.mark.slow  # over 2 s: keeps the README's fast set under 3 minutes on 2 cores
async def test_footer_keeps_quit_and_help_at_60x20_and_every_key_at_80x24():
    app = IbtuiApp(FakeEngine(epochs=2000, delay=0.004), fps=10)
    async with app.run_test(size=(60, 20)) as pilot:
        await wait_for(pilot, lambda: app.view.snapshots >= 1, what="a snapshot")
        await wait_for(pilot, lambda: "help" in screen_text(app).splitlines()[-1], what="the footer")
        footer = screen_text(app).splitlines()[-1]
        assert "? help" in footer and "q quit" in footer
        await pilot.resize_terminal(80, 24)
        await wait_for(pilot, lambda: "dyn" in screen_text(app).splitlines()[-1], what="the wider footer")
        footer = screen_text(app).splitlines()[-1]
        for key in ("? help", "q quit", "␣ pause", "n noise", "e est", "l layer", "s seeds", "d dyn", "tab page"):
            assert key in footer
        await pilot.press("d")  # on page 1, d shows the dynamics page first (not a silent change)
        assert app.vs.page == 2 and app.vs.dynamics == "snr" and "dynamics" in app.message
        await pilot.press("d")
        assert app.vs.dynamics != "snr"
        await pilot.press("space")
        assert "paused" in app.message  # the answer is in the message line, not over the plot
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        assert "esc: close" in text and "scroll" in text
        await pilot.press("escape", "q")
    assert app.return_code == 0


async def test_every_sweep_point_is_kept_and_v_shows_it():
    app = IbtuiApp(TwoPoints(epochs=30), fps=10)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: "FINISHED" in status(app), what="FINISHED")
        assert app.state.sweeps() == ["train.batch_size=32", "train.batch_size=64"]
        assert "sweep batch_size=64 2/2" in status(app)
        assert "v value" in screen_text(app).splitlines()[-1] or app.check_action("sweep", ()) is True
        await pilot.press("v")
        assert app.vs.sweep == "train.batch_size=32" and app.view.sweep == "train.batch_size=32"
        assert app.view.snapshots == len(app.view.info.snapshot_epochs) and app.view.get("I(X;T)", "bin30", "1").epochs[-1] == 30
        await pilot.press("q")


def test_state_keeps_each_sweep_points_series():
    st = TuiState()
    TwoPoints(epochs=20).run(st)
    a, b = st.view("train.batch_size=32"), st.view("train.batch_size=64")
    assert a.sweep != b.sweep and a.snapshots == b.snapshots == len(a.info.snapshot_epochs) > 2
    assert st.view().sweep == "train.batch_size=64"  # the live (last) point by default


# ---------------------------------------------------------------------------------------------- a real run
class Recorded:
    """Replays a recorded stream (start, emits, progress) like an engine."""

    def __init__(self, rec: RecordingSink, progress: list[Progress]):
        self.rec, self.progress = rec, progress
        self.info = rec.infos[0]

    def run(self, sink, controls):
        sink.start(self.info)
        by_epoch: dict[int, list] = {}
        for r in self.rec.records:
            by_epoch.setdefault(r.epoch, []).append(r)
        for e in sorted(by_epoch):
            sink.emit(by_epoch[e])
        sink.progress(self.progress[-1])
        return True


def record_real_run():
    """A 2-seed, 20-epoch SZT run of the real engine, in-process (a few seconds)."""
    from ibtui.engine.trainer import Engine
    from ibtui.scenario import load_scenario

    sc = load_scenario("szt_tanh", ["run.seeds=2", "run.epochs=20", "measure.snapshots=8", "run.device=\"cpu\"",
                                    "measure.kde.points=256"])
    progress: list[Progress] = []

    class Rec(RecordingSink):
        def progress(self, p):
            progress.append(p)

    rec = Rec()
    assert Engine(sc, "szt_tanh").run(rec, Controls())
    return rec, progress


@pytest.fixture(scope="session")
def real_run():
    return record_real_run()


@pytest.mark.slow  # over 2 s: keeps the README's fast set under 3 minutes on 2 cores
@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
async def test_panes_on_a_real_engine_run(real_run, size):
    rec, progress = real_run
    assert progress[-1].snapshots_done == progress[-1].snapshots_total == len(rec.infos[0].snapshot_epochs)
    app = IbtuiApp(Recorded(rec, progress), fps=10)
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: "FINISHED" in status(app), what="FINISHED")
        pages = ["1", "2", "3", "4"] if size == (80, 24) else [""]
        for page in pages:
            if page:
                await pilot.press(page)
            await pilot.pause(0.3)
            text = screen_text(app)
            assert "nan" not in text.lower().replace("nats", "")  # never a raw NaN
            assert "not measured" not in text and "…" not in "".join(text.splitlines()[3:-1])  # no cut titles
        plane = app.query_one("#plane")
        assert "I(X;T) [bits]" in plane.text and "↑ I(T;Y) [bits]" in plane.text
        assert "[nats]" in app.query_one("#loss").text and "epoch (log)" in app.query_one("#loss").text
        assert "↑ gradient SNR" in app.query_one("#dynamics").text
        assert "transitions" in app.query_one("#clustering").text  # szt_tanh measures no clustering
        await pilot.press("q")
    assert app.return_code == 0


def test_a_replayed_sweep_keeps_every_point(tmp_path):
    from ibtui.sinks.csv import CsvSink
    from ibtui.sinks.replay import CsvReplay

    path = tmp_path / "sweep.csv"
    csv = CsvSink(path, {"name": "fake"}, 'name = "fake"\n')
    TwoPoints(epochs=20).run(csv)
    csv.close(True)
    st = TuiState()
    assert CsvReplay(path).run(st, Controls()) is True
    assert st.sweeps() == ["train.batch_size=32", "train.batch_size=64"]
    assert st.view("train.batch_size=64").get("I(X;T)", "bin30", "1").epochs[-1] == 20
