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
    assert not list(tmp_path.glob(".*"))


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


# ---- issue 22: staging through links, two writers, disk full, an input as the output
def test_overwrite_never_writes_through_a_stale_staging_link(tmp_path):
    path, before = _earlier(tmp_path)
    precious = tmp_path / "precious2.txt"
    precious.write_text("mine")
    (tmp_path / ".run.csv.ibtui-new").symlink_to(precious)  # the staging name of earlier versions
    sink = CsvSink(path, {}, "", overwrite=True)
    sink.emit(REC)
    sink.close(True)
    assert precious.read_text() == "mine" and read_records(path) == REC


def test_two_writers_never_share_a_target(tmp_path):
    path, before = _earlier(tmp_path)
    first = CsvSink(path, {"name": "first"}, "", overwrite=True)
    with pytest.raises(ExportError, match="another ibtui is writing"):
        check_targets(path, overwrite=True)
    with pytest.raises(ExportError, match="another ibtui is writing"):
        CsvSink(path, {"name": "second"}, "", overwrite=True)
    first.emit(REC)
    first.close(True)
    assert read_records(path) == REC and json.loads(sidecar_path(path).read_text())["scenario"] == {"name": "first"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.csv", "run.meta.json"]


def _disk_full_after(monkeypatch, nbytes_ok: int):
    """write_all that writes `nbytes_ok` more bytes in all, then fails as a full disk does (mid-field)."""
    import errno
    import os

    left = [nbytes_ok]

    def write_all(fd, data):
        n = min(left[0], len(data))
        os.write(fd, data[:n]) if n else None
        left[0] -= n
        if n < len(data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(csv_sink, "write_all", write_all)


def test_disk_full_at_start_leaves_no_file(tmp_path, monkeypatch):
    _disk_full_after(monkeypatch, 10)
    with pytest.raises(OSError):
        CsvSink(tmp_path / "run.csv", {}, "")
    assert list(tmp_path.iterdir()) == []  # no 0-byte CSV to block the next run


def test_disk_full_mid_run_keeps_whole_rows(tmp_path, monkeypatch):
    sink = CsvSink(tmp_path / "run.csv", {}, "")
    sink.emit(REC)
    size = sink.path.stat().st_size
    _disk_full_after(monkeypatch, 7)
    with pytest.raises(OSError):
        sink.emit(REC * 3)
    sink.close(False)
    assert sink.path.stat().st_size == size and read_records(sink.path) == REC and sink.last_epoch == 0


def test_an_input_is_never_the_export(tmp_path):
    sc = tmp_path / "sc.toml"
    sc.write_text("[run]\n")
    for overwrite in (False, True):
        with pytest.raises(ExportError, match="input of this run"):
            check_targets(sc, overwrite=overwrite, inputs=(sc,))
    assert sc.read_text() == "[run]\n"
