"""Pilot tests of the live app on the fake engine: every key reaches the engine or the view, the plane
fills, quitting flushes the export, small terminals get one sentence, and the panes' text on a fixed
record stream (snapshot-style checks without plugins)."""
from __future__ import annotations

import math

import pytest

pytest.importorskip("textual")  # a machine without the app's packages (a bare GPU box) skips these

from tui_helpers import RecordingSink, same_records, screen_text, wait_for

from ibtui import quantities as Q
from ibtui.quantities import MI_XT
from ibtui.records import Progress
from ibtui.sinks.csv import CsvSink
from ibtui.sinks.runs import read_records
from ibtui.tui.app import IbtuiApp
from fake_engine import CLUSTERING, FakeEngine
from ibtui.tui.help import HelpScreen
from ibtui.tui.panes.base import fmt
from ibtui.tui.state import DYNAMICS_QUANTITIES


def status(app) -> str:
    return app.query_one("#status").text


def pane(app, pid: str):
    return app.query_one(f"#{pid}")


def plot_area(text: str) -> str:
    """The data area of a plotext plot: rows between the top and bottom frame, right of the y axis."""
    lines = text.splitlines()
    top = next(i for i, line in enumerate(lines) if "┌" in line)
    bottom = next(i for i, line in enumerate(lines) if "└" in line)
    out = []
    for line in lines[top + 1:bottom]:
        cut = min((line.index(c) for c in "┤│" if c in line), default=0)
        out.append(line[cut + 1:])
    return "\n".join(out)


def slow_engine(**kw) -> FakeEngine:
    kw.setdefault("epochs", 5000)
    kw.setdefault("delay", 0.004)
    return FakeEngine(**kw)


async def test_plane_fills_with_the_engines_numbers():
    eng = slow_engine()
    app = IbtuiApp(eng, fps=10)
    async with app.run_test(size=(80, 24)) as pilot:
        plane = pane(app, "plane")
        await wait_for(pilot, lambda: plane.message is None and app.view.snapshots >= 3, what="plane data")
        view = app.state.view()
        for layer in eng.layers:  # state holds exactly the engine's values (mean over seeds)
            s = view.get(MI_XT, "bin30", layer, "mean")
            assert s.epochs[0] == 0
            assert math.isclose(s.values[0], eng.value(MI_XT, 0, layer, "mean", "bin30"), rel_tol=1e-12)
        await wait_for(pilot, lambda: all(layer in plane.plots()[0].last_text for layer in "123456"),
                       what="a marker per layer")
        assert plane.text.startswith("information plane · bin30: 30 bins on [-1, 1] · mean of 3 seeds")
        assert "I(X;T) [bits]" in plane.text and "I(T;Y) [bits]" in plane.text
        assert "| log2 N" in plane.text  # the ceiling log2 4096 = 12 bits is drawn and named
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, what="exit")
    assert app.return_code == 0


@pytest.mark.slow  # over 2 s: keeps the README's fast set under 3 minutes on 2 cores
async def test_n_changes_the_engines_noise_and_status_shows_it():
    eng = slow_engine()
    app = IbtuiApp(eng, fps=10)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: "β=0 " in status(app) + " ", what="initial noise in status")
        await pilot.press("n")
        assert app.controls.noise_index == 1
        await wait_for(pilot, lambda: eng.noise_index == 1, what="engine applies noise level 1")
        applied_at = eng.noise_applied[-1][0]
        await wait_for(pilot, lambda: "noise β=0.05" in status(app) and "→" not in status(app), what="status β=0.05")
        assert app.state.view().noise_events[-1] == (applied_at, 0.05)
        # the plane marks the first snapshot after the change with *
        await wait_for(pilot, lambda: "*" in pane(app, "plane").plots()[0].last_text, timeout=20, what="* mark")
        await pilot.press("n", "n")  # 0.05 → 0.1 → back to 0
        await wait_for(pilot, lambda: eng.noise_index == 0 and "noise β=0 " in status(app) + " ", what="cycle to 0")
        assert [b for _, b in app.state.view().noise_events][-3:] == [0.05, 0.1, 0.0] or \
            [b for _, b in app.state.view().noise_events][-2:] == [0.05, 0.0]  # two presses may land in one epoch
        await pilot.press("q")
    assert app.return_code == 0


async def test_e_cycles_the_estimator_in_status_and_title():
    eng = slow_engine()
    app = IbtuiApp(eng, fps=10)
    async with app.run_test(size=(80, 24)) as pilot:
        plane = pane(app, "plane")
        await wait_for(pilot, lambda: plane.message is None, what="plane data")
        assert "estimator bin30" in status(app)
        await pilot.press("e")
        assert app.vs.estimator == "kde_upper"
        assert "estimator kde_upper" in status(app)  # instant: no wait for the engine
        assert "kde_upper: KDE upper bound, σ²=1e-3" in plane.text
        await pilot.press("e")
        assert app.vs.estimator == "bin30" and "estimator bin30" in status(app)
        await pilot.press("q")


@pytest.mark.slow  # over 2 s: keeps the README's fast set under 3 minutes on 2 cores
async def test_space_pauses_the_engine_and_resumes_it():
    eng = slow_engine()
    app = IbtuiApp(eng, fps=10)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: eng.epoch > 5, what="training")
        await pilot.press("space")
        assert app.controls.paused.is_set()
        await wait_for(pilot, lambda: status(app).split("\n")[1].startswith("PAUSED"), what="PAUSED shown")
        await pilot.pause(0.1)  # the epoch in progress ends
        frozen = eng.epoch
        await pilot.pause(0.3)  # 75 fake epochs' worth of time
        assert eng.epoch == frozen
        await pilot.press("space")
        assert not app.controls.paused.is_set()
        await wait_for(pilot, lambda: eng.epoch > frozen + 5, what="training resumes")
        await wait_for(pilot, lambda: status(app).split("\n")[1].startswith("RUNNING"), what="RUNNING shown")
        await pilot.press("space")
        await pilot.press("q")  # quitting while paused does not wait for a resume
        await wait_for(pilot, lambda: not app.is_running, timeout=5, what="exit while paused")
    assert app.return_code == 0 and app.engine_worker.is_finished


@pytest.mark.slow  # over 2 s: keeps the README's fast set under 3 minutes on 2 cores
async def test_l_s_d_and_pages_change_the_view():
    eng = slow_engine()
    app = IbtuiApp(eng, fps=10)
    async with app.run_test(size=(80, 24)) as pilot:
        plane = pane(app, "plane")
        await wait_for(pilot, lambda: plane.message is None and app.view.snapshots >= 3, what="plane data")
        seen = []
        for _ in range(len(eng.layers) + 1):
            await pilot.press("l")
            seen.append(app.vs.layer)
        assert seen == [*eng.layers, None]  # each layer, then all again
        await pilot.press("l")  # layer 1 only: no other layer's marker on the plot
        area = plot_area(plane.plots()[0].last_text)
        assert "1" in area and not any(d in area for d in "23456")
        assert "layer 1" in status(app)
        await pilot.press("l", "l", "l", "l", "l", "l")
        assert app.vs.layer is None
        assert not any(0x2800 <= ord(c) <= 0x28FF for c in plot_area(plane.plots()[0].last_text))
        await pilot.press("s")
        assert app.vs.per_seed and "each seed" in status(app)
        await wait_for(pilot, lambda: any(0x2800 <= ord(c) <= 0x28FF for c in plot_area(plane.plots()[0].last_text)),
                       what="the per-seed braille cloud")
        await pilot.press("3")
        clustering = pane(app, "clustering")
        await wait_for(pilot, lambda: clustering.message is None, what="clustering table")
        assert "[min–max over seeds]" in clustering.text and "–" in clustering.content_text()[0]
        await pilot.press("s")
        assert not app.vs.per_seed
        await pilot.press("2")
        for q in DYNAMICS_QUANTITIES[1:] + DYNAMICS_QUANTITIES[:1]:
            await pilot.press("d")
            assert app.vs.dynamics == q
        await pilot.press("tab")
        assert app.vs.page == 3
        await pilot.press("q")


async def test_help_opens_on_question_mark_and_closes_on_escape():
    app = IbtuiApp(slow_engine(), fps=10)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.view.info is not None, what="run info")
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        assert "ibtui help" in text and "noise" in text and "estimator" in text and "esc: close" in text
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("question_mark")  # ? toggles too
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("q")
    assert app.return_code == 0


async def test_quit_stops_the_engine_and_flushes_the_export(tmp_path):
    eng = slow_engine()
    rec = RecordingSink()
    csv_path = tmp_path / "run.csv"
    csv = CsvSink(csv_path, {"name": "fake"}, 'name = "fake"\n')
    app = IbtuiApp(eng, [csv, rec], fps=10)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.view.snapshots >= 5, what="a few snapshots")
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, what="exit")
    assert app.return_code == 0
    assert app.engine_worker.is_finished and app.engine_worker.result is False  # stopped early
    assert rec.closed == [False] and app.state.closed_with == [False]
    stopped_at = eng.epoch
    rows = read_records(csv_path)
    assert len(rows) == len(rec.records) == csv.rows  # everything emitted is on disk
    assert same_records(rows, rec.records)
    assert max(r.epoch for r in rows) <= stopped_at < eng.epochs
    import json

    meta = json.loads((tmp_path / "run.meta.json").read_text())
    assert meta["finished"] is False and meta["rows"] == len(rows)
    assert meta["run_info"]["layers"] == list(eng.layers)


async def test_a_finished_run_closes_its_sinks_once_with_finished_true():
    eng = FakeEngine(epochs=40, delay=0.0, snapshots=10)
    rec = RecordingSink()
    app = IbtuiApp(eng, [rec], fps=10)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: "FINISHED" in status(app), what="FINISHED")
        assert rec.closed == [True]
        assert {r.epoch for r in rec.records} == eng.snapshots
        await pilot.press("space")  # nothing to pause: the app says so and stays FINISHED
        assert not app.controls.paused.is_set() and "FINISHED" in status(app)
        await pilot.press("q")
    assert rec.closed == [True] and app.return_code == 0


async def test_engine_failure_shows_in_status_and_closes_sinks():
    class Broken(FakeEngine):
        def records_at(self, epoch):
            if epoch > 3:
                raise RuntimeError("boom")
            return super().records_at(epoch)

    rec = RecordingSink()
    app = IbtuiApp(Broken(epochs=50, delay=0.0), [rec], fps=10)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: "FAILED" in status(app), what="FAILED")
        assert "engine failed: RuntimeError: boom" in status(app)
        assert rec.closed == [False]
        assert 'raise RuntimeError("boom")' in app.state.error_detail  # printed after exit by run_app
        await pilot.press("q")
    assert app.return_code == 1


async def test_warnings_become_notices_not_stderr(capfd):
    import warnings

    class Warns(FakeEngine):
        def records_at(self, epoch):
            if epoch == 2:
                warnings.warn("something odd", RuntimeWarning)
            return super().records_at(epoch)

    app = IbtuiApp(Warns(epochs=20, delay=0.0), fps=10)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_for(pilot, lambda: app.view.warnings, what="the warning")
        assert app.view.warnings[0].startswith("RuntimeWarning: something odd (test_app.py:")
        await wait_for(pilot, lambda: "something odd" in screen_text(app), what="the notice on screen")
        await pilot.press("q")
    assert "something odd" not in capfd.readouterr().err


@pytest.mark.slow  # over 2 s: keeps the README's fast set under 3 minutes on 2 cores
async def test_too_small_terminal_shows_one_sentence_and_recovers():
    app = IbtuiApp(slow_engine(), fps=10)
    async with app.run_test(size=(50, 15)) as pilot:
        await wait_for(pilot, lambda: "ibtui needs" in screen_text(app), what="the sentence")
        text = screen_text(app)
        assert app.layout_mode == "too-small"
        assert " ".join(text.split()) == "ibtui needs a terminal of at least 60×20; this one is 50×15."
        assert "quit" not in text and "information plane" not in text
        await pilot.resize_terminal(80, 24)
        await wait_for(pilot, lambda: app.layout_mode == "compact", what="compact layout")
        await wait_for(pilot, lambda: "information plane" in screen_text(app), what="plane after resize")
        await pilot.resize_terminal(160, 48)
        await wait_for(pilot, lambda: app.layout_mode == "wide", what="wide layout")
        text = screen_text(app)
        for title in ("information plane", "loss and accuracy", "dynamics", "clustering", "Gaussian bound"):
            assert title in text
        await pilot.press("q")
    assert app.return_code == 0


async def test_missing_measures_say_so():
    eng = FakeEngine(epochs=5000, delay=0.004, dynamics=False, clustering=False, bound=False)
    app = IbtuiApp(eng, fps=10)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.view.snapshots >= 2, what="two snapshots")
        await pilot.press("2")
        await wait_for(pilot, lambda: pane(app, "dynamics").message == "snr: not measured in this run", what="dyn")
        await pilot.press("3")
        await wait_for(pilot, lambda: pane(app, "clustering").message == "clustering and dynamics: not measured in this run",
                       what="clustering message")
        assert pane(app, "bound").message == "Gaussian bound: not measured in this run"
        await pilot.press("q")


class FixedSource:
    """The fake engine's records at every snapshot of a 100-epoch run, emitted at once: a fixed stream."""

    def __init__(self):
        self.fake = FakeEngine(epochs=100, snapshots=12)
        self.info = self.fake.info

    def run(self, sink, controls):
        sink.start(self.info)
        for e in sorted(self.fake.snapshots):
            sink.emit(self.fake.records_at(e))
        sink.progress(Progress(100, 100, 3, 0.0, len(self.fake.snapshots), len(self.fake.snapshots),
                               train_s=100 * 3 / 123.0, trained=100))
        return True


async def test_panes_text_on_a_fixed_record_stream():
    src = FixedSource()
    fake = src.fake
    app = IbtuiApp(src, fps=10)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: "FINISHED" in status(app), what="FINISHED")
        await wait_for(pilot, lambda: pane(app, "plane").message is None and pane(app, "plane").plots()[0].last_text,
                       what="plane")
        await wait_for(pilot, lambda: "FINISHED" in screen_text(app) and "quit" in screen_text(app), what="repaint")
        lines = screen_text(app).splitlines()
        # 81 columns with the device: at 80 the lowest-priority item (the device) is dropped
        assert lines[0].strip() == "fake · epoch 100/100 · snapshot 12/12 · 3 seeds · 123 seed-epochs/s"
        assert lines[1].strip() == "FINISHED · noise β=0 · estimator bin30 · all layers · mean"
        assert lines[3].startswith("╭─ information plane · bin30: 30 bins on [-1, 1] · mean of 3 seeds · N=4096 ─")
        assert lines[-1].split() == ["tab", "page", "?", "help", "q", "quit", "␣", "pause", "n", "noise", "e", "est",
                                     "l", "layer", "s", "seeds", "d", "dyn"]  # every key, v only in sweeps
        # x axis: 0 to 1.04 × log2 N = 12.48 (the ceiling is the widest point)
        axis = next(line for line in lines if line.strip().startswith("│") and "0.0" in line and "12.5" in line)
        assert axis.split()[1] == "0.0" and axis.split()[-2] == "12.5"
        plot = pane(app, "plane").plots()[0].last_text
        assert all(d in plot for d in "123456")
        await pilot.press("3")
        await wait_for(pilot, lambda: pane(app, "clustering").message is None, what="clustering")
        rows = {line.split()[0]: line.split() for line in pane(app, "clustering").content_text()[0].splitlines()
                if line.strip()}
        assert rows["layer"] == ["layer", "cells", "H_bin", "[bits]", "homog.", "spread", "close", "pairs", "cos", "in",
                                 "cos", "out"]
        for layer in fake.layers:
            want = [layer] + [fmt(fake.value(q, 100, layer, "mean")) for q in ("cells", "H_bin", "homogeneity",
                                                                                "spread_ratio", "close_pairs",
                                                                                "cos_within", "cos_between")]
            assert rows[layer] == want
        assert set(CLUSTERING) == set(Q.CLUSTERING)  # the fake emits every clustering quantity of the registry
        bound = {line.split()[0]: line.split() for line in pane(app, "bound").content_text()[0].splitlines()
                 if line.strip()}
        assert bound["0-1"][1] == "7.560"  # log2(4096) × (1 − 0.1) × (1 − 0.3) at the last epoch
        assert bound["4-5"][1] == fmt(12 * 0.5 * 0.7)
        await pilot.press("2")
        dyn = pane(app, "dynamics")
        await wait_for(pilot, lambda: dyn.message is None and dyn.plots()[0].last_text, what="dynamics")
        assert dyn.text.startswith("dynamics · gradient SNR")
        assert all(f"T{k}" in dyn.plots()[0].last_text for k in ("1", "6"))  # transitions at 5 and 9 ≤ 100
        await pilot.press("4")
        loss = pane(app, "loss")
        await wait_for(pilot, lambda: loss.message is None and all(p.last_text for p in loss.plots()), what="loss")
        assert "loss" in loss.plots()[0].last_text and "accuracy" in loss.plots()[1].last_text
        await pilot.press("q")
    assert app.return_code == 0
