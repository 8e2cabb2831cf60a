"""CsvSink never destroys an earlier run: exclusive create, and --overwrite staged until the first snapshot."""
import hashlib
import json

import pytest

from ibtui.errors import ExportError
from ibtui.records import Progress, Record
from ibtui.sinks import csv as csv_sink
from ibtui.sinks.csv import CsvSink, check_targets, sidecar_path
from ibtui.sinks.runs import read_records

REC = [Record("t", 0, 0, 0, "1", "I(X;T)", "bin30", 1.5)]


def _sha(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _earlier(tmp_path):
    path = tmp_path / "run.csv"
    path.write_text("run,sweep,seed,epoch,step,layer,quantity,estimator,value\nold,,0,0,0,1,x,,1.0\n")
    sidecar_path(path).write_text('{"old": true}')
    return path, (_sha(path), _sha(sidecar_path(path)))


def test_new_sink_never_truncates_an_existing_file(tmp_path):
    path, before = _earlier(tmp_path)
    with pytest.raises(FileExistsError):
        CsvSink(path, {}, "")
    assert (_sha(path), _sha(sidecar_path(path))) == before


def test_overwrite_replaces_at_the_first_snapshot(tmp_path):
    path, before = _earlier(tmp_path)
    sink = CsvSink(path, {"name": "t"}, "", overwrite=True)
    assert (_sha(path), _sha(sidecar_path(path))) == before and not sink.replaced
    sink.emit(REC)
    assert sink.replaced and read_records(path) == REC
    assert json.loads(sidecar_path(path).read_text())["scenario"] == {"name": "t"}
    sink.close(True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.csv", "run.meta.json"]
    assert json.loads(sidecar_path(path).read_text())["finished"] is True


def test_overwrite_closed_without_a_snapshot_keeps_the_old_run(tmp_path):
    path, before = _earlier(tmp_path)
    sink = CsvSink(path, {}, "", overwrite=True)
    sink.close(False)
    assert (_sha(path), _sha(sidecar_path(path))) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.csv", "run.meta.json"]


def test_check_targets(tmp_path):
    path, _ = _earlier(tmp_path)
    with pytest.raises(ExportError, match="--overwrite"):
        check_targets(path, overwrite=False)
    check_targets(path, overwrite=True)
    check_targets(tmp_path / "new.csv", overwrite=False)
    (tmp_path / "new.rank3.meta.json").mkdir()
    with pytest.raises(ExportError, match="is a folder"):
        check_targets(tmp_path / "new.csv", overwrite=True, rank=3)
    assert not list(tmp_path.glob(".ibtui-check-*"))


def test_heartbeat_and_writer_in_the_sidecar(tmp_path, monkeypatch):
    monkeypatch.setattr(csv_sink, "HEARTBEAT_S", 0.0)
    sink = CsvSink(tmp_path / "run.csv", {}, "")
    meta = json.loads(sidecar_path(sink.path).read_text())
    import os

    assert meta["writer"]["pid"] == os.getpid() and meta["alive"]
    sink.meta["alive"] = "x"
    sink.progress(Progress(1, 2, 1, 0.0))
    assert json.loads(sidecar_path(sink.path).read_text())["alive"] != "x"
    sink.close(True)
