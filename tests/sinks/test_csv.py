"""The export: tidy long CSV written as the run goes, a sidecar, and a valid file after Ctrl-C."""
import csv
import json
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, cli
from ibtui.records import FIELDS, Record
from ibtui.sinks.csv import CsvSink, sidecar_path
from ibtui.sinks.runs import read_records


def test_round_trip(tmp_path):
    path = tmp_path / "run.csv"
    sink = CsvSink(path, {"name": "t"}, 'name = "t"\n')
    records = [Record("t", 0, 0, 0, "1", "I(X;T)", "bin30", 11.99951171875),
               Record("t", "mean", 3, 21, "", "loss_train", "", 0.1 + 0.2),
               Record("t", 1, 3, 21, "2-3", "gaussian_bound", "", float("nan")),
               Record("t", 1, 3, 21, "", "x", "", float("inf"))]
    sink.emit(records[:2])
    assert [r for r in read_records(path)] == records[:2]  # flushed after each emit
    sink.emit(records[2:])
    sink.close(finished=True)
    back = read_records(path)
    assert back[:2] == records[:2] and back[3] == records[3]
    assert back[2].layer == "2-3" and back[2].value != back[2].value  # nan survives
    with open(path) as f:
        assert next(csv.reader(f)) == list(FIELDS)
    meta = json.loads(sidecar_path(path).read_text())
    assert meta["finished"] is True and meta["rows"] == 4 and meta["ended"] and meta["versions"]["torch"]


def test_headless_run_exports_every_snapshot(tmp_path):
    out = tmp_path / "run.csv"
    res = cli("scenarios/szt_tanh.toml", "--export", out, "--quiet", "--set", "run.epochs=20",
              "--set", "run.seeds=3", "--set", "measure.snapshots=8", "--device", "cpu")
    assert res.returncode == 0, res.stderr
    recs = read_records(out)
    from ibtui.engine.schedule import snapshot_epochs

    assert sorted({r.epoch for r in recs}) == snapshot_epochs(20, 8, "log")
    seeds = {r.seed for r in recs}
    assert seeds == {0, 1, 2, "mean"}
    meta = json.loads(sidecar_path(out).read_text())
    assert meta["finished"] and meta["scenario"]["run"]["seeds"] == 3 and meta["run_info"]["device"] == "cpu"
    assert meta["rows"] == len(recs)
    assert any("H(T|X) = 0" in n for n in meta["run_info"]["notes"])


def _as_in_a_terminal() -> None:
    """In the child before exec: SIGINT at its default, as under a terminal (a shell's background job, e.g. a CI
    script run with &, starts with it ignored, and Python then keeps it ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig,code", [("SIGINT", 130),  # a real process each: the other two signals in the slow set
                                      pytest.param("SIGHUP", 129, marks=pytest.mark.slow),
                                      pytest.param("SIGTERM", 143, marks=pytest.mark.slow)])
@pytest.mark.slow  # over 2 s: keeps the README's fast set under 3 minutes on 2 cores
def test_interrupted_run_leaves_a_valid_csv_and_exit_128_plus_signal(tmp_path, sig, code):
    """Ctrl-C, a dropped SSH session (SIGHUP) and a kill (SIGTERM) all keep every snapshot already computed."""
    out = tmp_path / "run.csv"
    proc = subprocess.Popen([sys.executable, "-m", "ibtui", "scenarios/szt_tanh.toml", "--export", str(out),
                             "--quiet", "--device", "cpu", "--set", "run.seeds=2", "--set", "measure.snapshots=3000"],
                            cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_as_in_a_terminal)
    deadline = time.time() + 60
    while time.time() < deadline:  # wait until a few snapshots are on disk
        if out.exists() and out.stat().st_size > 20_000:
            break
        time.sleep(0.1)
    proc.send_signal(getattr(signal, sig))
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert "interrupted at epoch" in err and "Traceback" not in err
    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == list(FIELDS) and len(rows) > 100
    assert all(len(r) == len(FIELDS) for r in rows)
    recs = read_records(out)
    last = max(r.epoch for r in recs)
    # every snapshot on disk is complete: as many rows for the last epoch as for the first full one
    per_epoch = lambda e: sum(1 for r in recs if r.epoch == e and r.quantity != "noise_beta")
    assert per_epoch(last) == per_epoch(1)
    meta = json.loads(sidecar_path(out).read_text())
    assert meta["finished"] is False and meta["ended"]
