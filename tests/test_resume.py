"""`ibtui resume`: a stopped or killed run continues from its checkpoint and ends with the same export, byte for
byte, as the run that never stopped (same device, same thread count); every refusal leaves the files as they were.

A run is stopped in-process the way a hang-up or `kill` stops it: a SIGTERM sent to this process from a sink once
a given number of epochs is done (the CLI's handler stops at the end of that epoch and writes the checkpoint).
A kill -9 at random points of a real process is in the slow set.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

from conftest import REPO, cli
from helpers import Payload
from ibtui.sinks.checkpoint import CheckpointSink
from ibtui.sinks.csv import checkpoint_path, sidecar_path

QUICK = ["--device", "cpu", "-q", "--set", "run.checkpoint_every=0.001"]
SZT = ["szt_tanh", "--set", "run.seeds=2", "--set", "run.epochs=40", "--set", "measure.snapshots=12",
       "--set", "measure.kde.points=256", *QUICK]


def digest(folder) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def stop_after(monkeypatch, epochs: int) -> None:
    """SIGTERM this process once `epochs` training epochs are done (counted over a sweep's points)."""
    real = CheckpointSink.progress
    seen = {"n": 0}

    def progress(self, p):
        real(self, p)
        seen["n"] += 1
        if seen["n"] == epochs:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(CheckpointSink, "progress", progress)


def stopped_then_resumed(tmp_path, monkeypatch, args: list[str], stop_at: int, extra_rows: bool = False):
    """(uninterrupted CSV bytes, resumed CSV bytes, resumed sidecar) for the same run."""
    full, part = tmp_path / "full.csv", tmp_path / "part.csv"
    res = cli(*args, "-o", full)
    assert res.returncode == 0, res.stderr
    full_stdout = res.stdout
    assert not checkpoint_path(full).exists()  # a finished run keeps no checkpoint
    with monkeypatch.context() as m:
        stop_after(m, stop_at)
        res = cli(*args, "-o", part)
    assert res.returncode == 143, res.stderr
    assert "ibtui resume" in res.stderr and checkpoint_path(part).is_file()
    if extra_rows:  # rows a killed run wrote after its last checkpoint: dropped and computed again
        with open(part, "a") as f:
            f.write("szt_tanh,,0,999,999,1,I(X;T),bin30,1.0\nszt_tanh,,0,99")
    res = cli("resume", part, "--headless", "-q")
    assert res.returncode == 0, res.stderr
    assert res.stdout == full_stdout  # a sweep's fitted trend, from all its points
    return full.read_bytes(), part.read_bytes(), json.loads(sidecar_path(part).read_text())


@pytest.mark.slow  # over 2 s: keeps the README's fast set under 3 minutes on 2 cores
def test_szt_with_kde_and_dynamics_resumes_to_the_same_export(tmp_path, monkeypatch):
    full, resumed, meta = stopped_then_resumed(tmp_path, monkeypatch, SZT, stop_at=17, extra_rows=True)
    assert resumed == full
    assert meta["finished"] is True and [r["from_epoch"] for r in meta["resumes"]] == [17]
    assert meta["resumes"][0]["dropped_bytes"] > 0
    assert not checkpoint_path(tmp_path / "part.csv").exists()


@pytest.mark.slow  # over 2 s: keeps the README's fast set under 3 minutes on 2 cores
def test_noisy_sp_run_resumes_to_the_same_export(tmp_path, monkeypatch):
    args = ["szt_noisy_tanh", "--set", "run.seeds=2", "--set", "run.epochs=12", "--set", "measure.snapshots=6",
            "--set", "measure.sp.points=64", "--set", "measure.sp.samples=2", *QUICK]
    full, resumed, _ = stopped_then_resumed(tmp_path, monkeypatch, args, stop_at=5)
    assert resumed == full


@pytest.mark.slow  # over 2 s: keeps the README's fast set under 3 minutes on 2 cores
def test_step_unit_run_resumes_to_the_same_export(tmp_path, monkeypatch):
    """Snapshots inside epochs (measure.snapshot_unit = "step"): the checkpoint at an epoch boundary holds a
    fractional last epoch and an SNR window that spans the boundary; the resumed export is the same bytes."""
    args = ["szt_tanh", "--set", "run.seeds=2", "--set", "run.epochs=6", "--set", "measure.snapshots=16",
            "--set", 'measure.snapshot_unit="step"', "--set", "measure.kde.points=256", *QUICK]
    full, resumed, meta = stopped_then_resumed(tmp_path, monkeypatch, args, stop_at=3, extra_rows=True)
    assert resumed == full
    assert [r["from_epoch"] for r in meta["resumes"]] == [3]
    assert b"\nszt_tanh,,0,0.14285714285714285,1,1," in full  # a snapshot after step 1 of 7


def test_sweep_resumes_in_its_second_point(tmp_path, monkeypatch):
    args = ["szt_batch_sweep", "--set", "run.seeds=2", "--set", "run.epochs=6", "--set", "measure.snapshots=4",
            "--set", "sweep.values=[512, 1024]", *QUICK]
    full, resumed, meta = stopped_then_resumed(tmp_path, monkeypatch, args, stop_at=9)  # epoch 3 of point 2
    assert resumed == full  # and the sweep report printed the same fit (stopped_then_resumed)
    assert [p["sweep"] for p in meta["sweep_points"]] == ["train.batch_size=512", "train.batch_size=1024"]


def test_noise_changes_and_engine_state_survive_a_checkpoint(tmp_path):
    """The noise level chosen with `n`, the step counter and the probes' accumulated state come back exactly."""
    from ibtui.engine.checkpoint import load, save
    from ibtui.engine.sweep import SweepRunner
    from ibtui.scenario import load_scenario

    sc = load_scenario("szt_noisy_tanh", ["run.seeds=2", "run.epochs=4", "measure.snapshots=4",
                                          "measure.sp.points=32", "measure.dynamics.enabled=true"])
    a = SweepRunner(sc)
    a.current.noise_index = 2
    for _ in range(3):
        a.current.train_epoch()
    save(tmp_path / "ck.pt", {"format": "ibtui-checkpoint-v1", "runner": a.state_dict()})
    b = SweepRunner(sc)
    b.load_state_dict(load(tmp_path / "ck.pt")["runner"])
    assert (b.current.epoch, b.current.step, b.current.noise_index) == (3, a.current.step, 2)
    for pa, pb in zip(a.current.model.parameters(), b.current.model.parameters()):
        assert torch.equal(pa, pb)
    a.current.train_epoch()
    b.current.train_epoch()
    for pa, pb in zip(a.current.model.parameters(), b.current.model.parameters()):
        assert torch.equal(pa, pb)


# ---------------------------------------------------------------------------------------------- refusals

@pytest.fixture
def stopped(tmp_path, monkeypatch):
    """A run stopped at epoch 5 with its checkpoint: the folder, the CSV."""
    out = tmp_path / "run.csv"
    with monkeypatch.context() as m:
        stop_after(m, 5)
        assert cli(*SZT, "-o", out).returncode == 143
    return tmp_path, out


def refused_untouched(folder, res, *words):
    assert res.returncode == 2, (res.returncode, res.stderr)
    err = res.stderr.strip()
    assert err.startswith("ibtui: ") and "\n" not in err and "Traceback" not in err, err
    for w in words:
        assert w in err, (w, err)
    return err


def edit_checkpoint(path, **changes):
    ck = torch.load(path, weights_only=True)
    ck.update(changes)
    torch.save(ck, path)


def test_finished_run_is_refused(tmp_path):
    out = tmp_path / "run.csv"
    assert cli(*SZT, "-o", out).returncode == 0
    before = digest(tmp_path)
    refused_untouched(tmp_path, cli("resume", out), "finished", "nothing to resume")
    assert digest(tmp_path) == before


@pytest.mark.parametrize("change,words", [
    ({"ibtui": "0.0.1"}, ["ibtui 0.0.1", "that version"]),
    ({"scenario_toml": 'name = "other"\n'}, ["scenario differs", "another run"]),
    ({"run_id": "0" * 32}, ["another run"]),
    ({"csv_bytes": 10 ** 12}, ["shorter", "changed since"]),
], ids=["version", "scenario", "run-id", "csv-shorter"])
def test_checkpoint_of_another_run_or_version_is_refused(stopped, change, words):
    folder, out = stopped
    edit_checkpoint(checkpoint_path(out), **change)
    before = digest(folder)
    refused_untouched(folder, cli("resume", out), *words)
    assert digest(folder) == before


def test_missing_and_corrupt_checkpoints_are_refused(stopped):
    folder, out = stopped
    ck = checkpoint_path(out)
    ck.write_bytes(b"\x80\x04garbage" * 10)
    before = digest(folder)
    refused_untouched(folder, cli("resume", out), "not a readable ibtui checkpoint")
    ck.write_bytes(b"")
    refused_untouched(folder, cli("resume", out), "not a readable ibtui checkpoint")
    ck.unlink()
    before = digest(folder)
    refused_untouched(folder, cli("resume", out), "no checkpoint")
    assert digest(folder) == before


def test_crafted_checkpoint_runs_no_code(stopped):
    folder, out = stopped
    marker = folder.parent / "pwned"
    ck = checkpoint_path(out)
    with open(ck, "wb") as f:  # a torch.save-like zip would do the same: the unpickler refuses the global
        pickle.dump({"format": "ibtui-checkpoint-v1", "runner": Payload(marker)}, f)
    before = digest(folder)
    refused_untouched(folder, cli("resume", out), "not a readable ibtui checkpoint", "no code in it ran")
    assert not marker.exists()
    assert digest(folder) == before


def test_export_with_a_live_writer_is_refused(stopped):
    folder, out = stopped
    meta = json.loads(sidecar_path(out).read_text())
    meta["writer"] = {"pid": os.getpid(), "host": socket.gethostname()}  # this process is alive
    meta["ended"] = None  # as a running (or killed) writer leaves it
    sidecar_path(out).write_text(json.dumps(meta))
    before = digest(folder)
    refused_untouched(folder, cli("resume", out), "still writing")
    assert digest(folder) == before


def test_overwrite_removes_the_earlier_runs_checkpoint(stopped):
    folder, out = stopped
    assert checkpoint_path(out).is_file()
    res = cli(*SZT, "-o", out, "--overwrite", "--set", "run.checkpoint_every=0")
    assert res.returncode == 0, res.stderr
    assert not checkpoint_path(out).exists()


def test_checkpoint_holds_only_tensors_and_plain_data(stopped):
    _, out = stopped
    ck = torch.load(checkpoint_path(out), weights_only=True)  # the safe unpickler reads all of it
    assert ck["format"] == "ibtui-checkpoint-v1" and ck["epoch"] == 5 and ck["runner"]["engine"]["epoch"] == 5


# ---------------------------------------------------------------------------------------------- real processes

@pytest.mark.slow  # a real process killed with SIGKILL at random points, then resumed each time
def test_kill_9_at_random_points_then_resume_matches_the_uninterrupted_run(tmp_path):
    import random

    # 3000 epochs: training lasts several seconds (the compiled step trains 300 in well under one), time for kills
    args = ["szt_tanh", "--set", "run.seeds=3", "--set", "run.epochs=3000", "--set", "measure.snapshots=30",
            "--set", "measure.kde.points=256", "--set", "run.checkpoint_every=0.3", "--device", "cpu", "-q",
            "--threads", "1"]
    full, part = tmp_path / "full.csv", tmp_path / "part.csv"
    run = [sys.executable, "-m", "ibtui"]
    subprocess.run([*run, *args, "-o", str(full)], cwd=REPO, check=True, timeout=600, stdin=subprocess.DEVNULL)
    rnd = random.Random(7)
    proc = subprocess.Popen([*run, *args, "-o", str(part)], cwd=REPO, stdin=subprocess.DEVNULL)
    kills = 0
    for _ in range(3):
        deadline = time.monotonic() + 60  # until this process has written (a checkpoint; its resume noted)
        while time.monotonic() < deadline and proc.poll() is None and not (
                checkpoint_path(part).exists() and len(resumes(part)) == kills):
            time.sleep(0.05)
        time.sleep(rnd.uniform(0.2, 2.0))
        if proc.poll() is not None:
            break
        proc.kill()
        if proc.wait() == 0 or finished(part):  # it finished just before the kill (or while exiting)
            break
        kills += 1
        proc = subprocess.Popen([*run, "resume", str(part), "--headless", "-q", "--threads", "1"], cwd=REPO,
                                stdin=subprocess.DEVNULL)
    assert proc.wait(timeout=600) == 0 or finished(part)  # (killed while exiting, after it finished)
    assert finished(part) and kills >= 1
    assert part.read_bytes() == full.read_bytes()
    assert len(resumes(part)) == kills


def finished(csv) -> bool:
    try:
        return json.loads(sidecar_path(csv).read_text()).get("finished") is True
    except (OSError, ValueError):
        return False


def resumes(csv) -> list:
    try:
        return json.loads(sidecar_path(csv).read_text()).get("resumes", [])
    except (OSError, ValueError):
        return []


def kill_9(word: str) -> int:
    """SIGKILL every process whose command line holds `word` (torchrun's workers live in their own groups)."""
    n = 0
    for proc in os.listdir("/proc"):
        try:
            cmd = open(f"/proc/{proc}/cmdline", "rb").read().decode(errors="replace")
            if word in cmd and int(proc) != os.getpid():
                os.kill(int(proc), signal.SIGKILL)
                n += 1
        except (OSError, ValueError):
            pass
    return n


@pytest.mark.slow  # two torchrun processes, each importing torch, twice
def test_torchrun_run_stopped_and_resumed_merges_to_the_uninterrupted_export(tmp_path):
    sets = ["--set", "run.seeds=4", "--set", "run.epochs=4000", "--set", "measure.snapshots=10", "--set",
            "measure.kde.points=128", "--set", "run.checkpoint_every=0.2", "--device", "cpu", "--quiet",
            "--threads", "1"]
    full, part = tmp_path / "full.csv", tmp_path / "part.csv"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29531",
                "-m", "ibtui"]
    subprocess.run([*torchrun, "szt_tanh", "--export", str(full), *sets], cwd=REPO, check=True, timeout=600,
                   stdin=subprocess.DEVNULL, capture_output=True)
    proc = subprocess.Popen([*torchrun, "szt_tanh", "--export", str(part), *sets], cwd=REPO,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    ranks = [tmp_path / f"part.rank{r}.checkpoint.pt" for r in range(2)]
    while not all(p.exists() for p in ranks) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    assert kill_9(str(part)) >= 3  # torchrun and its two workers
    proc.wait()
    assert all(p.exists() for p in ranks) and not part.exists()
    res = subprocess.run([*torchrun, "resume", str(part), "--headless", "--quiet", "--threads", "1"], cwd=REPO,
                         timeout=600, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    assert part.read_bytes() == full.read_bytes()
