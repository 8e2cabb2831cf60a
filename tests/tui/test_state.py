"""TuiState, the app's sink: exact storage, version counters, bounded series, noise events, messages."""
from __future__ import annotations

import math
import threading

import pytest


pytest.importorskip("textual")  # a machine without the app's packages (a bare GPU box) skips these

from ibtui.records import Progress, Record
from ibtui.quantities import NOISE_BETA, SEED_DIVERGED
from fake_engine import FakeEngine
from ibtui.tui.panes.base import EPOCH_RAMP, epoch_color, layer_marker, thin
from ibtui.tui.panes.bound import sparkline
from ibtui.sinks.progress import duration
from ibtui.tui.panes.base import fit
from ibtui.tui.state import TuiState


def rec(epoch, value, quantity="I(X;T)", layer="1", seed="mean", estimator="bin30"):
    return Record("r", seed, epoch, epoch, layer, quantity, estimator, value)


def test_series_are_stored_exactly_and_versions_count_changes():
    st = TuiState()
    eng = FakeEngine(epochs=10)
    st.start(eng.info)
    assert (st.version, st.data_version) == (1, 1)
    st.emit(eng.records_at(0))
    st.progress(Progress(1, 10, 3, 0.0, train_s=1 / 14, trained=1))  # progress changes the status only: data_version stays
    assert (st.version, st.data_version) == (3, 2)
    v = st.view()
    assert v.get("I(T;Y)", "kde_upper", "2", 1).values == (eng.value("I(T;Y)", 0, "2", 1, "kde_upper"),)
    assert v.epoch == 1 and v.total == 10 and v.rate == 42.0 and v.snapshots == 1
    assert v.layers() == list(eng.layers) and v.estimators() == ["bin30", "kde_upper"] and v.seeds() == [0, 1, 2]
    assert st.view().series is v.series  # no new records: the copy is reused, not rebuilt


def test_series_are_bounded_keeping_first_and_last():
    st = TuiState(max_points=8)
    for e in range(100):
        st.emit([rec(e, float(e))])
    s = st.view().get("I(X;T)", "bin30", "1")
    assert len(s.epochs) <= 8 and s.epochs[0] == 0 and s.epochs[-1] == 99
    assert list(s.epochs) == sorted(s.epochs) and s.values == tuple(float(e) for e in s.epochs)
    with pytest.raises(ValueError):
        TuiState(max_points=2)


def test_a_view_does_not_change_when_records_arrive_later():
    st = TuiState(max_points=8)
    for e in range(8):
        st.emit([rec(e, float(e))])
    v = st.view()
    for e in range(8, 40):  # appends, then thinning swaps in new lists
        st.emit([rec(e, float(e))])
    s = v.get("I(X;T)", "bin30", "1")
    assert s.epochs == tuple(range(8)) and s.values == tuple(float(e) for e in range(8)) and s.last() == (7, 7.0)
    assert st.view().get("I(X;T)", "bin30", "1").last() == (39, 39.0)


def test_same_epoch_replaces_and_noise_and_divergence_are_tracked():
    st = TuiState()
    st.emit([rec(5, 1.0)])
    st.emit([rec(5, 2.0)])
    assert st.view().get("I(X;T)", "bin30", "1").values == (2.0,)
    st.emit([Record("r", "mean", 0, 0, "", NOISE_BETA, "", 0.0)])
    st.emit([Record("r", "mean", 7, 0, "", NOISE_BETA, "", 0.0)])  # same level again: not a change
    st.emit([Record("r", "mean", 9, 0, "", NOISE_BETA, "", 0.1)])
    st.emit([Record("r", 3, 12, 0, "", SEED_DIVERGED, "", 1.0)])
    v = st.view()
    assert v.noise_events == ((0, 0.0), (9, 0.1)) and v.beta == 0.1 and v.diverged == ((3, 12),)
    st.progress(Progress(13, 20, 3, math.nan))  # a replay does not know β: the records' value stays
    assert st.view().beta == 0.1


def test_close_is_recorded_once_and_pending_messages():
    st = TuiState()
    assert st.view().pending_measure(False).startswith("measure not available yet")
    st.emit([rec(0, 1.0), rec(1, 1.0)])
    assert st.view().pending_measure(False) == "not measured in this run"
    assert st.view().pending_measure(True) is None
    st.close(True)
    st.close(False)
    assert st.view().finished is True and st.closed_with == [True, False]


def test_concurrent_emit_and_view_lose_nothing():
    st = TuiState(max_points=10_000)

    def writer(seed):
        for e in range(500):
            st.emit([rec(e, float(e), seed=seed)])

    threads = [threading.Thread(target=writer, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        st.view()
    for t in threads:
        t.join()
    v = st.view()
    assert all(len(v.get("I(X;T)", "bin30", "1", s).epochs) == 500 for s in range(4))
    assert st.data_version == 2000


def test_drawing_helpers():
    assert thin(list(range(10)), 20) == list(range(10))
    assert thin(list(range(100)), 5) == [0, 24, 49, 74, 99]
    assert layer_marker("3") == "3" and layer_marker("0") == "0" and layer_marker("10") == "a"
    assert layer_marker("12") == "c"
    assert epoch_color(0, 100) == EPOCH_RAMP[0] and epoch_color(100, 100) == EPOCH_RAMP[-1]
    assert sparkline([0.0, 1.0]) == "▁█" and sparkline([2.0, 2.0]) == "▄▄" and sparkline([math.nan]) == ""
    assert duration(59) == "59s" and duration(61) == "1m01s" and duration(3725) == "1h02m" and duration(math.nan) == "–"
    assert fit(["aaaa", "bb", "cc"], 9) == "aaaa · bb" and fit(["abcdefghij"], 5) == "abcd…"
