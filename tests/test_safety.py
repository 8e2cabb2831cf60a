"""Issue 14, "Safe with a researcher's data": every bad input is one sentence and exit 2 (never a traceback),
an export never destroys an earlier run, data files never run code, and a dead run does not look alive.

Through the real CLI in-process (Typer's CliRunner); only the tests that need a real process (torch-free
imports, SIGKILL) start one.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import pickle
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import REPO
from ibtui.cli import COMMANDS, app
from ibtui.records import FIELDS
from ibtui.sinks.csv import sidecar_path
from ibtui.sinks.runs import read_records

TINY = ["--set", "run.epochs=3", "--set", "run.seeds=2", "--set", "measure.snapshots=3", "--device", "cpu", "-q"]


def cli(*args, env=None):
    """`ibtui ARGS` in-process (as `ibtui.cli.main` does: `run` inserted when the first word is no command)."""
    args = [str(a) for a in args]
    if args and args[0] not in COMMANDS and not args[0].startswith("-"):
        args.insert(0, "run")
    return CliRunner().invoke(app, args, env=env)


def refused(res, *words) -> str:
    """Exit 2 with exactly one line on stderr, starting `ibtui: `, containing `words`; no traceback."""
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    err = res.stderr.strip()
    assert err.startswith("ibtui: ") and "\n" not in err, err
    assert "Traceback" not in res.output
    for w in words:
        assert w in err, (w, err)
    return err


def digest(folder: Path) -> dict[str, str]:
    """Every file under `folder` (names and sha256): 'byte-identical before and after'."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def earlier(tmp_path) -> Path:
    """A folder holding an earlier run: run.csv and run.meta.json."""
    res = cli("szt_tanh", "-o", tmp_path / "run.csv", *TINY)
    assert res.exit_code == 0, res.output
    return tmp_path


# ------------------------------------------------------------------------------------------------
# 1. An export never destroys an earlier run


def test_existing_export_is_refused_before_any_work(earlier):
    before = digest(earlier)
    t0 = time.perf_counter()
    err = refused(cli("szt_tanh", "-o", earlier / "run.csv", *TINY), "--overwrite", "already exist")
    assert time.perf_counter() - t0 < 2.0  # refused before the engine is built
    assert digest(earlier) == before, err


def test_existing_sidecar_alone_is_refused(tmp_path):
    (tmp_path / "run.meta.json").write_text('{"note": "an earlier run"}')
    before = digest(tmp_path)
    refused(cli("szt_tanh", "-o", tmp_path / "run.csv", *TINY), "run.meta.json", "--overwrite")
    assert digest(tmp_path) == before


def test_sidecar_path_that_is_a_folder_is_refused_even_with_overwrite(earlier):
    (earlier / "run.meta.json").unlink()
    (earlier / "run.meta.json").mkdir()
    before = digest(earlier)
    names = sorted(p.name for p in earlier.iterdir())
    err = refused(cli("szt_tanh", "-o", earlier / "run.csv", "--overwrite", *TINY), "is a folder", "sidecar")
    assert digest(earlier) == before and sorted(p.name for p in earlier.iterdir()) == names, err  # no stray tmp


def test_missing_or_unwritable_folder_is_refused(tmp_path):
    refused(cli("szt_tanh", "-o", tmp_path / "nope" / "run.csv", *TINY), "does not exist")
    (tmp_path / "run.csv").mkdir()
    refused(cli("szt_tanh", "-o", tmp_path / "run.csv", "--overwrite", *TINY), "is a folder")
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        refused(cli("szt_tanh", "-o", ro / "run.csv", *TINY), "cannot write")


def test_overwrite_replaces_only_after_the_first_snapshot(earlier):
    old = digest(earlier)
    res = cli("szt_tanh", "-o", earlier / "run.csv", "--overwrite", *TINY, "--set", "run.seeds=1")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in earlier.iterdir()) == ["run.csv", "run.meta.json"]  # nothing staged is left
    assert digest(earlier) != old
    assert {r.seed for r in read_records(earlier / "run.csv")} == {0, "mean"}
    assert json.loads((earlier / "run.meta.json").read_text())["finished"] is True


def _engine_run_raising(monkeypatch, exc: BaseException, after_snapshots: int):
    """Make the engine raise `exc` once it has emitted `after_snapshots` snapshots (0: before any)."""
    from ibtui.engine.sweep import SweepRunner
    from ibtui.records import Sink

    real = SweepRunner.run

    class Raising(Sink):
        def __init__(self, sink):
            self.sink, self.n = sink, 0

        def start(self, info):
            self.sink.start(info)
            if after_snapshots == 0:
                raise exc

        def emit(self, records):
            self.sink.emit(records)
            self.n += 1

        def progress(self, p):
            self.sink.progress(p)
            if self.n >= after_snapshots:
                raise exc

        def close(self, finished):
            self.sink.close(finished)

    monkeypatch.setattr(SweepRunner, "run", lambda self, sink, controls=None: real(self, Raising(sink), controls))


@pytest.mark.parametrize("exc,code", [(KeyboardInterrupt(), 130), (MemoryError(), 2)])
def test_overwrite_run_stopped_before_its_first_snapshot_keeps_the_old_files(earlier, monkeypatch, exc, code):
    before = digest(earlier)
    _engine_run_raising(monkeypatch, exc, after_snapshots=0)
    res = cli("szt_tanh", "-o", earlier / "run.csv", "--overwrite", *TINY)
    assert res.exit_code == code, res.output
    assert "left as it was" in res.stderr
    assert digest(earlier) == before
    assert sorted(p.name for p in earlier.iterdir()) == ["run.csv", "run.meta.json"]


def test_torchrun_rank_files_are_targets_too(tmp_path):
    (tmp_path / "run.rank1.csv").write_text("run,sweep\n")  # a crashed distributed run's only copy of rank 1
    before = digest(tmp_path)
    torchrun = {"WORLD_SIZE": "2", "RANK": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    refused(cli("szt_tanh", "-o", tmp_path / "run.csv", *TINY, env=torchrun),
            "run.rank1.csv", "--overwrite")
    assert digest(tmp_path) == before


# ------------------------------------------------------------------------------------------------
# 2. Every input: one sentence, exit 2


@pytest.mark.parametrize("command", ["run", "show"])
@pytest.mark.parametrize("content", [bytes(range(256)) * 4, 'name = "café"\n'.encode("latin-1"),
                                     b'name = "x"\n\x00\x00\x00'], ids=["binary", "latin1", "nul"])
def test_non_utf8_or_binary_scenario(tmp_path, command, content):
    p = tmp_path / "s.toml"
    p.write_bytes(content)
    err = refused(cli(command, p))
    assert str(p) in err and ("UTF-8" in err or "binary" in err)


def test_absurd_seed_count_is_refused_with_both_memory_figures(tmp_path):
    t0 = time.perf_counter()
    err = refused(cli("szt_tanh", "--set", "run.seeds=1000000000", "--device", "cpu", "-q"), "needs at least",
                  "available", "fewer seeds")
    assert time.perf_counter() - t0 < 10
    assert len(re.findall(r"[\d.,e+]+ GiB", err)) == 2, err


@pytest.mark.parametrize("value,words", [("99999999999999999999", ["64-bit", "--set run.first_seed"]),
                                         ("4294967290", ["32 bits", "run.first_seed"]),
                                         ("-1", ["out of range"])])
def test_first_seed_bounded_by_the_rng(value, words):
    refused(cli("show", "szt_tanh", "--set", f"run.first_seed={value}"), *words)
    refused(cli("szt_tanh", "--set", f"run.first_seed={value}", "-q"), *words)


@pytest.mark.parametrize("exc", [MemoryError(), RuntimeError("[enforce fail at alloc_cpu.cpp:118] DefaultCPUAllocator: "
                                                             "not enough memory: you tried to allocate 1 bytes."),
                                 "torch"], ids=["MemoryError", "cpu-RuntimeError", "OutOfMemoryError"])
def test_out_of_memory_during_a_run_ends_like_an_interrupt(tmp_path, monkeypatch, exc):
    import torch

    if exc == "torch":
        exc = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    _engine_run_raising(monkeypatch, exc, after_snapshots=1)
    out = tmp_path / "run.csv"
    err = refused(cli("szt_tanh", "-o", out, *TINY), "out of memory", "fewer seeds")
    recs = read_records(out)  # valid CSV with the finished snapshots
    assert recs and f"up to epoch {max(r.epoch for r in recs)};" in err
    meta = json.loads(sidecar_path(out).read_text())
    assert meta["finished"] is False and meta["ended"], err


def test_interrupt_names_the_last_snapshot_in_the_csv(tmp_path, monkeypatch):
    _engine_run_raising(monkeypatch, KeyboardInterrupt(), after_snapshots=2)
    out = tmp_path / "run.csv"
    res = cli("szt_tanh", "-o", out, "--set", "run.epochs=40", "--set", "run.seeds=1", "--set", "measure.snapshots=4",
              "--device", "cpu", "-q")
    assert res.exit_code == 130
    last = max(r.epoch for r in read_records(out))
    assert f"up to epoch {last}." in res.stderr or f"up to epoch {last}; `ibtui resume" in res.stderr, res.stderr


@pytest.mark.parametrize("setting,words", [
    ("run.cuda_graph=True", ["--set run.cuda_graph=True", '"True"', "true or false"]),
    ("run.epochs=true", ["--set run.epochs=true", "run.epochs = true", "integer"]),
    ("train.lrr=1", ["--set train.lrr=1", "did you mean 'train.lr'"]),
    ("train.optimizer=rmsprop", ["--set train.optimizer=rmsprop", '"rmsprop"', "adam"]),
    ("run=3", ["--set run=3", "must be a table"]),
])
def test_set_errors_name_the_set_and_echo_toml(setting, words):
    err = refused(cli("show", "szt_tanh", "--set", setting), *words)
    assert "szt_tanh.toml" not in err and "True" not in err.replace("cuda_graph=True", "").replace('"True"', "")


def test_file_errors_still_name_the_file(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text("[run]\ncuda_graph = 1\n")
    refused(cli("show", p, "--set", "run.seeds=2"), str(p), "run.cuda_graph = 1")


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_device_flag_is_named_as_given():
    err = refused(cli("szt_tanh", "--device", "cuda", "-q"), "--device cuda")
    assert "run.device" not in err


@pytest.mark.parametrize("args,words", [(["--threads", "-3"], ["--threads"]), (["--fps", "0"], ["--fps"])])
def test_cli_numbers(args, words):
    refused(cli("szt_tanh", *args, "-q"), *words)


def _idx(magic: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    return magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims) + payload


def test_corrupt_mnist_file_names_where_a_good_copy_comes_from(tmp_path):
    d = tmp_path / "mnist"
    d.mkdir()
    (d / "train-images-idx3-ubyte").write_bytes(_idx(0x803, (10, 28, 28), bytes(100)))  # truncated
    (d / "train-labels-idx1-ubyte").write_bytes(_idx(0x801, (10,), bytes(10)))
    (d / "t10k-images-idx3-ubyte").write_bytes(_idx(0x803, (1, 28, 28), bytes(784)))
    (d / "t10k-labels-idx1-ubyte").write_bytes(_idx(0x801, (1,), bytes(1)))
    refused(cli("mnist_fc", "--data-dir", d, *TINY), "truncated or corrupt", "good copy", "yann.lecun.com")


def _cifar_folder(tmp_path: Path, first: bytes) -> Path:
    d = tmp_path / "cifar" / "cifar-10-batches-py"
    d.mkdir(parents=True)
    good = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}, protocol=2)
    for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"):
        (d / name).write_bytes(first if name == "data_batch_1" else good)
    return d.parent


class _Evil:
    """A pickle that would create a file when loaded (what a crafted `data_batch_1` could do)."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


CIFAR_RUN = ["--set", "run.epochs=1", "--set", "run.seeds=1", "--set", "measure.snapshots=1", "--device", "cpu",
             "-q"]


def test_crafted_cifar_batch_runs_no_code(tmp_path):
    target = tmp_path / "pwned"
    evil = pickle.dumps({b"data": _Evil(target), b"labels": [0]}, protocol=2)
    folder = _cifar_folder(tmp_path, evil)
    refused(cli("cifar10_resnet32", "--data-dir", folder, *CIFAR_RUN), "not a CIFAR batch", "io.open",
            "cs.toronto.edu")
    assert not target.exists()


def test_corrupt_cifar_batch_names_the_source(tmp_path):
    folder = _cifar_folder(tmp_path, b"\x80\x02}q\x00(U\x04data")  # truncated
    refused(cli("cifar10_resnet32", "--data-dir", folder, *CIFAR_RUN), "not a CIFAR batch", "good copy",
            "cs.toronto.edu")


# ------------------------------------------------------------------------------------------------
# 4. ibtui view


@pytest.mark.parametrize("content,words", [
    (b"a,b,c\n1,2,3\n", ["header"]),
    (bytes(range(256)) * 8, ["binary"]),
    (b"", ["empty"]),
    ("\u00e9t\u00e9".encode("latin-1") + b"\n", ["UTF-8"]),
    ((",".join(FIELDS) + "\nt,,0,notanint,0,1,I(X;T),bin30,0.5\n").encode(), ["line 2"]),
], ids=["wrong-columns", "binary", "empty", "latin1", "bad-row"])
def test_view_refuses_a_file_that_is_not_an_export(tmp_path, content, words):
    p = tmp_path / "x.csv"
    p.write_bytes(content)
    refused(cli("view", p), *words)


def test_view_accepts_a_file_still_being_written(tmp_path):
    from ibtui.sinks.replay import check_export

    p = tmp_path / "run.csv"
    p.write_text(",".join(FIELDS) + "\nt,,0,0,0,1,I(X;T),bin30,0.5\nt,,0,0,0,1,I(T;Y),bi")  # last line half-written
    check_export(p)


def test_replay_of_a_silent_run_says_it_is_not_growing(tmp_path):
    from ibtui.sinks.replay import CsvReplay

    p = tmp_path / "run.csv"
    p.write_text(",".join(FIELDS) + "\nt,,0,0,0,1,I(X;T),bin30,0.5\n")
    sidecar_path(p).write_text(json.dumps({"ended": None, "finished": False}))  # an older run: no writer, no beat
    replay = CsvReplay(p)
    assert replay.check_stalled() == ""  # just written: following
    old = time.time() - 3600
    os.utime(p, (old, old))
    msg = replay.check_stalled()
    assert msg == f"not growing since {time.strftime('%H:%M', time.localtime(old))}: the run may have been killed"


def test_status_line_shows_not_growing():
    pytest.importorskip("textual")
    from ibtui.tui.panes.status import RunFlags, status_lines
    from ibtui.tui.state import TuiState, ViewState

    msg = "not growing since 11:02: the run may have been killed"
    first, second = status_lines(TuiState().view(), ViewState(), RunFlags(source="view run.csv", stalled=msg))
    assert second.startswith("NOT GROWING") and msg in second and "FOLLOWING" not in second


@pytest.mark.slow  # over 2 s: keeps the README's fast set under 3 minutes on 2 cores
def test_sigkilled_run_is_seen_as_not_growing(tmp_path):
    """A real process killed with SIGKILL: its sidecar never ends; the replay sees the writer gone."""
    import signal

    from ibtui.controls import Controls
    from ibtui.sinks.replay import CsvReplay

    out = tmp_path / "run.csv"
    proc = subprocess.Popen([sys.executable, "-m", "ibtui", "szt_tanh", "-o", str(out), "-q", "--device", "cpu",
                             "--set", "run.seeds=1", "--set", "measure.snapshots=3000"], cwd=REPO,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not (out.exists() and len(out.read_bytes().splitlines()) > 1):
            time.sleep(0.1)
        assert out.exists(), proc.stderr.read() if proc.poll() is not None else "no output"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    meta = json.loads(sidecar_path(out).read_text())
    assert meta["ended"] is None and meta["writer"]["pid"] == proc.pid
    replay = CsvReplay(out, poll_s=0.01)
    controls = Controls()
    import threading

    from helpers import ListSink

    t = threading.Thread(target=replay.run, args=(ListSink(), controls), daemon=True)
    t.start()
    deadline = time.time() + 10
    while time.time() < deadline and not replay.stalled:
        time.sleep(0.02)
    controls.stop.set()
    t.join(5)
    assert replay.stalled.startswith("not growing since ") and "may have been killed" in replay.stalled


# ------------------------------------------------------------------------------------------------
# 5. Settings that compute nothing, or leave quantities empty


@pytest.mark.parametrize("command", ["show", "run"])
def test_estimator_needing_noise_on_a_noiseless_network(command):
    refused(cli(command, "szt_tanh", "--set", 'measure.estimators=["sp"]', *(["-q"] if command == "run" else [])),
            '"sp"', "noisy network", "model.noise_levels = [0.0]")


def test_no_test_set_is_warned_on_stderr_and_in_the_run_notes(tmp_path):
    res = cli("show", "szt_tanh", "--set", "data.train_fraction=1")
    assert res.exit_code == 0 and "loss_test, acc_test, gen_gap, error_gap" in res.stderr
    out = tmp_path / "run.csv"
    res = cli("szt_tanh", "-o", out, "--set", "data.train_fraction=1", *TINY)
    assert res.exit_code == 0 and "warning: data.train_fraction = 1.0 leaves no test set" in res.stderr
    notes = json.loads(sidecar_path(out).read_text())["run_info"]["notes"]
    assert any("leaves no test set" in n for n in notes)


def test_tiny_train_fraction_is_refused():
    refused(cli("show", "szt_tanh", "--set", "data.train_fraction=0.0001"), "no training points")


# ------------------------------------------------------------------------------------------------
# 6. The README


def test_readme_columns_match_the_file():
    readme = (REPO / "README.md").read_text()
    listed = re.search(r"One row per number: `([^`]+)`", readme).group(1)
    assert tuple(listed.split(",")) == FIELDS


@pytest.mark.slow  # over 2 s: keeps the README's fast set under 3 minutes on 2 cores
def test_readme_pandas_line_keeps_every_quantity(tmp_path):
    pd = pytest.importorskip("pandas")
    out = tmp_path / "run.csv"
    assert cli("szt_noisy_tanh", "-o", out, *TINY).exit_code == 0
    readme = (REPO / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme[readme.index("## The export"):], re.S).group(1)
    scope = {"pd": pd}
    exec(code.replace('"run.csv"', repr(str(out))), scope)  # the README's lines, as written
    table = scope["table"]
    with open(out, newline="") as f:
        pairs = {(r["quantity"], r["estimator"]) for r in csv.DictReader(f) if r["value"] != "nan"}
    assert set(table.columns) >= pairs and len(pairs) > 10
    from ibtui import load

    frame = load(out).frame()  # the API's frame: the same rows, empty cells kept as "" (pivot_table keeps them)
    assert len(frame) == len(read_records(out))
    assert set(frame.pivot_table(index=["sweep", "seed", "epoch", "layer"], columns=["quantity", "estimator"],
                                 values="value").columns) == set(table.columns)


# ------------------------------------------------------------------------------------------------
# Bad input never imports torch


def test_refusals_and_show_do_not_import_torch(tmp_path):
    (tmp_path / "run.csv").write_text("x\n")
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"\xff\xfe")
    script = f"""
import sys
from ibtui.cli import main
for argv in (["--help"], ["show", "szt_tanh"], ["szt_tanh", "-o", {str(tmp_path / 'run.csv')!r}],
             ["run", {str(bad)!r}], ["szt_tanh", "--set", "run.first_seed=-5"], ["view", {str(bad)!r}]):
    try:
        main(argv)
    except SystemExit:
        pass
print("torch" in sys.modules)
"""
    res = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert res.stdout.strip().splitlines()[-1] == "False", res.stdout + res.stderr


# ------------------------------------------------------------------------------------------------
# Fuzz: random mutations of the bundled scenarios end in exit 0, or exit 2 and one line; never a traceback

BUNDLED = sorted((REPO / "ibtui" / "scenarios").glob("*.toml"))
ODD_VALUES = ["x", "", True, False, [], [1, "a"], [[1]], {"a": 1}, 1.5, -1, 0, 1, 2**31, 2**32, 2**63 - 1, -2**63,
              10**30, -10**30, float("nan"), float("inf"), -float("inf"), 1e308, -0.0, "auto", "cuda:7", "sp",
              ["sp", "exact", "kde"], [0.0], [-1.0], [1e9], [10**12], "é" * 300, "\x00\u202e"]


def _dump(d: dict, prefix: str = "") -> str:
    from ibtui.scenario import _toml_value

    plain = [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in d.items() if not isinstance(v, dict)]
    tables = [(k, v) for k, v in d.items() if isinstance(v, dict)]
    out = "\n".join(plain) + "\n"
    for k, v in tables:
        out += f"\n[{prefix}{json.dumps(k)}]\n" + _dump(v, f"{prefix}{json.dumps(k)}.")
    return out


def _leaves(d: dict, path=()):
    for k, v in d.items():
        yield path + (k,)
        if isinstance(v, dict):
            yield from _leaves(v, path + (k,))


def mutations(seed: int, n: int):
    """n mutated scenario texts (bytes), each with a label; seeded, so a failure reproduces."""
    import random
    import tomllib

    rng = random.Random(seed)
    for i in range(n):
        src = rng.choice(BUNDLED)
        raw = src.read_bytes()
        kind = rng.choice(["value", "value", "value", "delete", "unknown", "bytes", "truncate", "flip", "set"])
        args: list[str] = []
        if kind in ("value", "delete", "unknown", "set"):
            d = tomllib.loads(raw.decode())
            path = rng.choice(list(_leaves(d)))
            node = d
            for k in path[:-1]:
                node = node[k]
            value = rng.choice(ODD_VALUES)
            if kind == "value":
                node[path[-1]] = value
            elif kind == "delete":
                del node[path[-1]]
            elif kind == "unknown":
                node["bogus_" + str(rng.randrange(99))] = value
            else:
                from ibtui.scenario import _toml_value

                args = ["--set", f"{'.'.join(path)}={_toml_value(value) if rng.random() < .8 else value}"]
            data = _dump(d).encode()
        elif kind == "bytes":
            at = rng.randrange(len(raw))
            data = raw[:at] + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))) + raw[at:]
        elif kind == "truncate":
            data = raw[: rng.randrange(len(raw))]
        else:
            b = bytearray(raw)
            for _ in range(rng.randrange(1, 6)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            data = bytes(b)
        yield f"{i}:{src.stem}:{kind}", data, args


def _check_outcome(label: str, res) -> None:
    assert res.exit_code in (0, 2), (label, res.exit_code, res.output, res.exception)
    assert res.exception is None or isinstance(res.exception, SystemExit), (label, res.exception)
    assert "Traceback" not in res.output, label
    if res.exit_code == 2:
        err = res.stderr.strip()
        assert err.startswith("ibtui: ") and "\n" not in err, (label, err)


@pytest.mark.slow  # over 2 s: keeps the README's fast set under 3 minutes on 2 cores
def test_fuzz_show_with_300_mutations(tmp_path):
    t0 = time.perf_counter()
    outcomes = {0: 0, 2: 0}
    for label, data, args in mutations(seed=14, n=300):
        p = tmp_path / "s.toml"
        p.write_bytes(data)
        res = cli("show", p, *args)
        _check_outcome(label, res)
        outcomes[res.exit_code] += 1
    assert outcomes[0] > 20 and outcomes[2] > 100, outcomes  # the mutations reach both outcomes
    assert time.perf_counter() - t0 < 20


@pytest.mark.slow
def test_fuzz_run_with_tiny_epochs(tmp_path):
    """The same mutations through `run` (tiny epochs, no image data): what `show` accepts must run or refuse."""
    empty = tmp_path / "nodata"
    empty.mkdir()
    for label, data, args in mutations(seed=1414, n=120):
        p = tmp_path / "s.toml"
        p.write_bytes(data)
        res = cli(p, *args, "--set", "run.epochs=2", "--set", "measure.snapshots=2", "--device", "cpu", "-q",
                  "--data-dir", empty)
        _check_outcome(label, res)


def test_out_of_memory_in_the_app_stops_the_run_with_a_warning():
    """The app's engine thread: OOM returns False (STOPPED, sinks closed unfinished) and warns, no failure."""
    import warnings

    from ibtui.cli import _OutOfMemoryStops

    class Engine:
        epoch = 7

        def run(self, sink, controls=None):
            raise MemoryError()

    guarded = _OutOfMemoryStops(Engine())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert guarded.run(None) is False
    assert guarded.oom == "out of memory at epoch 7 (MemoryError)" and guarded.epoch == 7
    assert "fewer seeds" in str(caught[0].message)


def test_disk_full_during_a_run_keeps_the_csv_and_says_so(tmp_path, monkeypatch):
    from ibtui.sinks.csv import CsvSink

    real, calls = CsvSink.emit, []

    def emit(self, records):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(self, records)

    monkeypatch.setattr(CsvSink, "emit", emit)
    out = tmp_path / "run.csv"
    refused(cli("szt_tanh", "-o", out, *TINY), "No space left on device", "holds every snapshot up to epoch 0")
    assert {r.epoch for r in read_records(out)} == {0}
    assert json.loads(sidecar_path(out).read_text())["finished"] is False


async def test_app_status_line_says_a_killed_run_is_not_growing(tmp_path):
    """`ibtui view` of a run whose writer died: the app's status line, not FOLLOWING forever."""
    pytest.importorskip("textual")
    from ibtui.sinks.replay import CsvReplay
    from ibtui.tui.app import IbtuiApp
    from ibtui.tui.panes.status import StatusLine

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    p = tmp_path / "run.csv"
    p.write_text(",".join(FIELDS) + "\nt,,0,0,0,1,I(X;T),bin30,0.5\n")
    import socket

    sidecar_path(p).write_text(json.dumps({"ended": None, "finished": False,
                                           "writer": {"pid": int(dead.stdout), "host": socket.gethostname()}}))
    app = IbtuiApp(CsvReplay(p, poll_s=0.02), (), fps=20, source_label="view run.csv")
    async with app.run_test(size=(120, 40)) as pilot:
        end = time.monotonic() + 15
        while "NOT GROWING" not in app.query_one(StatusLine).text:
            assert time.monotonic() < end, app.query_one(StatusLine).text
            await pilot.pause(0.05)
        assert "the run may have been killed" in app.query_one(StatusLine).text
        await pilot.press("q")


def test_fuzz_view_check_on_mutated_exports(earlier):
    """`ibtui view`'s check on 200 mutations of a real export: it accepts or says one sentence, never crashes."""
    import random

    from ibtui.errors import ExportError
    from ibtui.sinks.replay import check_export

    rng = random.Random(1414)
    raw = (earlier / "run.csv").read_bytes()
    p = earlier / "m.csv"
    refusals = 0
    for _ in range(200):
        b = bytearray(raw[: rng.randrange(len(raw))] if rng.random() < 0.3 else raw)
        for _ in range(rng.randrange(0, 4) if b else 0):
            b[rng.randrange(len(b))] = rng.randrange(256)
        p.write_bytes(bytes(b))
        try:
            check_export(p)
        except ExportError as exc:
            assert "\n" not in str(exc)
            refusals += 1
    assert refusals > 20
