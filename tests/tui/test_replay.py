"""Replay of an exported CSV (`ibtui view`): exact round trip, following a file still being written,
runs without a sidecar, and the same panes as the live run."""
from __future__ import annotations

import json
import threading

import pytest

pytest.importorskip("textual")  # a machine without the app's packages (a bare GPU box) skips these

from tui_helpers import RecordingSink, same_records, wait_for

from ibtui.controls import Controls
from ibtui.records import FIELDS, Record
from ibtui.sinks.csv import CsvSink, sidecar_path
from ibtui.sinks.runs import read_records
from ibtui.tui.app import IbtuiApp
from fake_engine import FakeEngine
from ibtui.sinks.replay import CsvReplay, info_from_meta
from ibtui.tui.state import TuiState
from ibtui.records import Fanout


def export(tmp_path, engine: FakeEngine, name: str = "run.csv", finish: bool = True):
    path = tmp_path / name
    sink = CsvSink(path, {"name": "fake", "run": {"epochs": engine.epochs}}, 'name = "fake"\n')
    rec = RecordingSink()
    engine.run(Fanout([sink, rec]), Controls())
    if finish:
        sink.close(True)
    return path, rec, sink


def test_replay_round_trips_every_record_exactly(tmp_path):
    eng = FakeEngine(epochs=60, delay=0.0, snapshots=15)
    path, rec, _ = export(tmp_path, eng)
    got = RecordingSink()
    replay = CsvReplay(path, poll_s=0.01)
    assert replay.info == eng.info  # from the sidecar's run_info, tuples restored
    assert replay.run(got, Controls()) is True  # the sidecar says finished
    assert same_records(got.records, rec.records)  # same order, same floats (repr round trip)
    assert got.infos == [eng.info]
    state = TuiState()
    CsvReplay(path).run(state, Controls())
    view = state.view()
    assert view.get("I(X;T)", "kde_upper", "3", 1).values == tuple(
        r.value for r in rec.records if (r.quantity, r.estimator, r.layer, r.seed) == ("I(X;T)", "kde_upper", "3", 1))
    assert view.epoch == 60 and view.total == 60 and view.beta == 0.0


def test_replay_follows_a_file_being_written(tmp_path):
    eng = FakeEngine(epochs=30, delay=0.0, snapshots=8)
    path, rec, sink = export(tmp_path, eng, finish=False)  # the writer is still "running": no end in the sidecar
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    half = len(lines) // 2
    path.write_text("".join(lines[:half]) + lines[half][:7])  # a torn last line: must not be parsed yet
    meta = json.loads(sidecar_path(path).read_text())
    got = RecordingSink()
    controls = Controls()
    replay = CsvReplay(path, poll_s=0.01)
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("r", replay.run(got, controls)))
    t.start()
    deadline = 200
    while len(got.records) < half - 1 and deadline:  # header + (half-1) complete rows
        threading.Event().wait(0.01)
        deadline -= 1
    assert len(got.records) == half - 1 and t.is_alive()  # caught up, still following
    with open(path, "a") as f:
        f.write(lines[half][7:] + "".join(lines[half + 1:]))
    meta.update(ended="2026-01-01T00:00:00+00:00", finished=True)
    sidecar_path(path).write_text(json.dumps(meta))
    t.join(5)
    assert not t.is_alive() and result["r"] is True
    assert same_records(got.records, rec.records)


def test_stop_ends_following_and_no_sidecar_infers_the_run(tmp_path):
    eng = FakeEngine(epochs=20, delay=0.0, snapshots=6, estimators=("bin30", "sp"))
    path, rec, _ = export(tmp_path, eng)
    sidecar_path(path).unlink()
    replay = CsvReplay(path, poll_s=0.01)
    assert replay.info is None
    controls = Controls()
    got = RecordingSink()
    t = threading.Thread(target=lambda: replay.run(got, controls))
    t.start()
    for _ in range(300):
        if len(got.records) == len(rec.records):
            break
        threading.Event().wait(0.01)
    assert t.is_alive()  # no sidecar: it cannot know the run ended, so it follows
    controls.stop.set()
    t.join(5)
    assert not t.is_alive() and same_records(got.records, rec.records)
    info = got.infos[0]
    assert info.layers == eng.layers and info.estimators == ("bin30", "sp") and info.seeds == eng.seeds
    assert info.n_points == 0 and info.epochs == 0  # unknown without the sidecar: no ceiling is drawn


def test_info_from_meta_ignores_unknown_and_bad_meta():
    assert info_from_meta(None) is None and info_from_meta({"run_info": "x"}) is None
    assert info_from_meta({"run_info": {"run": "only a name"}}) is None  # missing fields
    full = {k: [] for k in ("seeds", "layers", "layer_widths", "estimators", "noise_levels")}
    full.update(run="r", scenario_path="", device="cpu", epochs=5, n_points=8, mi_points="all",
                estimator_settings={}, extra_field_from_a_newer_writer=1)
    info = info_from_meta({"run_info": full})
    assert info is not None and info.seeds == () and info.n_points == 8


def test_garbage_rows_are_skipped_and_columns_are_found_by_name(tmp_path):
    path = tmp_path / "x.csv"
    row = dict(run="r", sweep="", seed="0", epoch="1", step="0", layer="1", quantity="I(X;T)", estimator="bin30",
               value="0.5")
    good = ",".join(row[f] for f in FIELDS)
    bad = ",".join(row[f] if f != "value" else "oops" for f in FIELDS)
    path.write_text(",".join(FIELDS) + f"\n{good}\nnot,a,row\n{bad}\n")
    got = RecordingSink()
    CsvReplay(path, follow=False).run(got, Controls())
    assert [(r.quantity, r.value, r.seed) for r in got.records] == [("I(X;T)", 0.5, 0)]
    # an older export: no sweep column, other column order
    old = tmp_path / "old.csv"
    old.write_text("value,run,seed,epoch,step,layer,quantity,estimator\n0.25,r,mean,3,9,2,I(T;Y),kde_upper\n")
    got = RecordingSink()
    CsvReplay(old, follow=False).run(got, Controls())
    assert got.records == [Record("r", "mean", 3, 9, "2", "I(T;Y)", "kde_upper", 0.25, "")]


def test_state_shows_one_sweep_point_and_counts_the_others():
    state = TuiState()
    a = Record("r", "mean", 1, 0, "1", "I(X;T)", "bin30", 1.0, "lr=0.1")
    b = Record("r", "mean", 1, 0, "1", "I(X;T)", "bin30", 2.0, "lr=0.2")
    state.emit([a, b])
    view = state.view()
    assert view.sweep == "lr=0.1" and view.other_sweeps == ("lr=0.2",)
    assert view.get("I(X;T)", "bin30", "1").values == (1.0,)  # not mixed


@pytest.mark.slow  # over 2 s: keeps the README's fast set under 3 minutes on 2 cores
async def test_view_fills_the_same_panes_as_the_live_run(tmp_path):
    eng = FakeEngine(epochs=80, delay=0.0, snapshots=12)
    live = IbtuiApp(eng, fps=10)
    path = tmp_path / "run.csv"
    live.sinks.append(CsvSink(path, {"name": "fake"}, 'name = "fake"\n'))
    texts = {}
    for key, app in (("live", live), ("view", IbtuiApp(CsvReplay(path), fps=10, source_label="view run.csv"))):
        async with app.run_test(size=(160, 48)) as pilot:  # wide: every pane drawn
            await wait_for(pilot, lambda: "FINISHED" in app.query_one("#status").text, what=f"{key} FINISHED")
            panes = ("plane", "dynamics", "clustering", "bound", "loss")
            await wait_for(pilot, lambda: all(app.query_one(f"#{p}").drawn_data == app.state.data_version
                                              and app.query_one(f"#{p}").message is None for p in panes), what="panes")
            await pilot.pause(0.2)  # let the last redraw reach the screen
            texts[key] = {p: app.query_one(f"#{p}").text for p in panes}
            status = app.query_one("#status").text
            await pilot.press("q")
        assert app.return_code == 0
    assert "view run.csv" in status and "seed-epochs/s" not in status and "ETA" not in status  # no speed to show
    assert len(read_records(path)) > 0
    for p in texts["live"]:
        assert texts["view"][p] == texts["live"][p], p
