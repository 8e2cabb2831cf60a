"""Issue 34 items 6-7, hostile round three on inputs and text: `view` without a terminal or of a link loop, the usual
false words in IBTUI_NATIVE, Ctrl-C while `python -m ibtui` imports, `resume` of an export another ibtui holds,
and the options `run` and `resume` share. Files in tmp folders only."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import REPO, cli
from ibtui.records import Record
from ibtui.sinks.csv import CsvSink

ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def _export(folder, close=True):
    path = folder / "run.csv"
    sink = CsvSink(path, {}, "")
    sink.emit([Record("t", s, e, 0, "1", "I(X;T)", "bin30", 1.0 + e) for e in range(3) for s in (0, "mean")])
    if close:
        sink.close(True)
    return path, sink


def _one_sentence(stderr: str, *words):
    err = stderr.strip()
    assert err.startswith("ibtui: ") and "\n" not in err and "Traceback" not in err, err
    for w in words:
        assert w in err, (w, err)


def test_view_without_a_terminal_says_so(tmp_path):
    path, _ = _export(tmp_path)
    res = subprocess.run([sys.executable, "-m", "ibtui", "view", str(path)], stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, env=ENV, timeout=60)
    assert res.returncode == 2 and res.stdout == ""
    _one_sentence(res.stderr, "ibtui view needs a terminal", "ibtui plot")


def test_view_of_a_link_loop_is_one_sentence(tmp_path):
    os.symlink("loop.csv", tmp_path / "loop.csv")
    for args in (("view", tmp_path / "loop.csv"), ("view", tmp_path / "loop.csv", tmp_path / "loop.csv"),
                 ("plot", tmp_path / "loop.csv")):
        res = cli(*args)
        assert res.returncode == 2, res.stderr
        _one_sentence(res.stderr, "Too many levels of symbolic links")


@pytest.mark.parametrize("value, on", [("0", False), ("false", False), ("FALSE", False), ("off", False),
                                       (" Off ", False), ("no", False), ("No", False), ("1", True), ("true", True),
                                       ("yes", True), ("on", True)])
def test_ibtui_native_takes_the_usual_false_words(monkeypatch, value, on):
    from ibtui import compiled

    monkeypatch.setenv("IBTUI_NATIVE", value)
    assert compiled.enabled() is on
    monkeypatch.delenv("IBTUI_NATIVE")
    assert compiled.enabled() is True


def test_ctrl_c_while_python_m_ibtui_imports_is_quiet(tmp_path):
    """SIGINT delivered exactly while ibtui.cli imports typer (deterministic, unlike a timed signal): exit 130,
    nothing printed, no traceback and no "Exception ignored" from the import machinery."""
    code = ("import builtins, os, runpy, signal, sys\n"
            "signal.signal(signal.SIGINT, signal.default_int_handler)\n"  # as in a terminal: a shell's background
            "real = builtins.__import__\n"                                # job (CI run with &) ignores SIGINT
            "def hook(name, *a, **k):\n"
            "    if name == 'typer' and not getattr(hook, 'sent', False):\n"
            "        hook.sent = True\n"
            "        os.kill(os.getpid(), signal.SIGINT)\n"
            "    return real(name, *a, **k)\n"
            "builtins.__import__ = hook\n"
            "sys.argv = ['ibtui', 'show', 'szt_tanh']\n"
            "runpy.run_module('ibtui', run_name='__main__', alter_sys=True)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=60,
                         cwd=tmp_path)
    assert res.returncode == 130 and res.stdout == "" and res.stderr == "", (res.returncode, res.stderr)


def test_resume_refuses_an_export_another_ibtui_holds(tmp_path):
    path, sink = _export(tmp_path, close=False)  # a live writer: it holds the export's lock
    try:
        res = cli("resume", path)
        assert res.returncode == 2
        _one_sentence(res.stderr, "another ibtui is still writing this run (it holds the export's lock)")
    finally:
        sink.close(False)


def test_run_and_resume_share_their_options():
    import inspect

    from ibtui.cli import resume, run

    run_p, resume_p = inspect.signature(run).parameters, inspect.signature(resume).parameters
    shared = [n for n in resume_p if n in run_p and n != "scenario"]
    assert set(shared) >= {"headless", "quiet", "progress_every", "threads", "data_dir", "fps", "no_mouse"}
    for name in shared:
        assert run_p[name].default is resume_p[name].default, name  # one definition each


# ---- fuzz (seeded): the API's `set` and .npz members; every case is a sentence or a faithful success
KEYS = ["run.seeds", "run.epochs", "name", "train.lr", "model.hidden", "data.split", "measure.snapshots", "run",
        "run.seeds.x", "", ".", "a..b", "run.seeds ", "run.seeds=1", "run.seeds = 1, epochs", "x\x00", "a\udc80",
        "[run]", "run]\n[train", "名前", 7, None, b"run.seeds", ("run", "seeds")]
VALUES = [1, 2, 0, -1, 2**70, 1.5, float("nan"), float("inf"), True, "", "sgd", 'a"b', "a\\b", "x\ny", "\x1b[2J",
          "a\u2028b", "\udc80", None, b"x", [], [4, 2], [4, None], (3,), {"seeds": 2}, {"seeds = 1, epochs": 7},
          {"": 1}, object(), 1e300, "1, epochs = 7", "3 # comment"]


GOOD = [("run.seeds", 3), ("name", 'a "quoted" name'), ("name", "back\\slash"), ("name", "名前 é"), ("train.lr", 0.5),
        ("train.lr", 1), ("model.hidden", [4, 2]), ("model.hidden", (6,)), ("run", {"seeds": 2, "epochs": 9}),
        ("data.split", "random"), ("measure.snapshots", 7), ("description", "two\nlines"), ("name", "1, epochs = 7")]


def _flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def _settings(rng):
    out = {}
    for _ in range(rng.randrange(1, 4)):
        key, value = rng.choice(GOOD) if rng.random() < 0.6 else (rng.choice(KEYS), rng.choice(VALUES))
        try:
            out[key] = value
        except TypeError:  # an unhashable key
            pass
    return out


def test_fuzz_the_api_set(tmp_path):
    """What `set` accepts is exactly what the scenario then holds (nothing spliced, nothing else changed); what it
    refuses is one ScenarioError sentence. 400 seeded dicts, none runs (no file is written)."""
    import random

    from ibtui.api import overrides
    from ibtui.errors import IbtuiError
    from ibtui.scenario import load_scenario, to_dict

    rng = random.Random(34)
    base_flat = _flat(to_dict(load_scenario("szt_tanh")))
    counts = {"accepted": 0, "refused": 0}
    for _ in range(400):
        settings = _settings(rng)
        try:
            sc = to_dict(load_scenario("szt_tanh", overrides(settings)))
        except IbtuiError as exc:
            text = str(exc)
            assert "\n" not in text and "\x1b" not in text, text
            text.encode("utf-8")  # no lone surrogate in a message
            counts["refused"] += 1
            continue
        given = {".".join(part.strip() for part in k.split(".")): v for k, v in _flat(settings).items()}  # as --set
        got = _flat(sc)
        for key, value in given.items():  # what was set is what the scenario holds
            want = list(value) if isinstance(value, tuple) else value
            assert got[key] == want, (key, value, got[key])
        assert {k for k in got if got[k] != base_flat[k]} <= set(given), settings  # and nothing else changed
        counts["accepted"] += 1
    print("fuzz counts (API set)", counts)
    assert counts["accepted"] > 50 and counts["refused"] > 150 and sum(counts.values()) == 400
    assert list(tmp_path.iterdir()) == []


def _good_npz(path):
    import numpy as np

    rng = np.random.default_rng(0)
    y = np.arange(40) % 3
    np.savez(path, x=(rng.normal(size=(40, 3)) + y[:, None]).astype("float32"), y=y.astype("int64"),
             x_test=rng.normal(size=(5, 3)).astype("float32"), y_test=y[:5])
    return path.read_bytes()


def test_fuzz_npz_members(tmp_path):
    """300 seeded mutations of a good .npz (bytes flipped in headers and data, cut short, zip fields and .npy
    headers rewritten): each reads as checked arrays or is one DataFormatError sentence, never another error."""
    import random

    import numpy as np

    from ibtui.data.npz import read_npz
    from ibtui.errors import DataMissingError

    rng = random.Random(34)
    good = _good_npz(tmp_path / "good.npz")
    p = tmp_path / "mine.npz"
    counts = {"read": 0, "refused": 0}
    descrs = [b"'<f4'", b"'|O'", b"'<f8'", b"'|V9999999999'", b"'<u8'", b"'>i2'", b"'<c8'", b"[('a', '<f4')]",
              b"'<f4', (1000, 1000)", b"'?'", b"'<M8[s]'", b"'|S5'", b"'<U9'"]
    shapes = [b"(40, 3)", b"(40,)", b"(1000000000000, 3)", b"(0, 3)", b"(-1, 3)", b"(40, 3, 1)", b"()", b"(2**40,)",
              b"(40, 'a')", b"(5, 3)"]
    for i in range(300):
        raw = bytearray(good)
        how = i % 6
        if how == 0:  # random bytes changed anywhere
            for _ in range(rng.randrange(1, 8)):
                raw[rng.randrange(len(raw))] = rng.randrange(256)
        elif how == 1:  # cut short
            raw = raw[:rng.randrange(len(raw))]
        elif how in (2, 3):  # an .npy header's descr or shape rewritten (same length kept where it fits)
            key, choices = (b"'descr': ", descrs) if how == 2 else (b"'shape': ", shapes)
            starts = [j for j in range(len(raw)) if raw.startswith(key, j)]
            j = rng.choice(starts) + len(key)
            end = raw.index(b", '" if how == 2 else b", }", j)
            raw[j:end] = rng.choice(choices)
        elif how == 4:  # a zip header field: flags, method, sizes, attributes
            sig, fields = rng.choice([(b"PK\x03\x04", (6, 8, 18, 22)), (b"PK\x01\x02", (8, 10, 20, 24, 38))])
            starts = [j for j in range(len(raw)) if raw.startswith(sig, j)]
            j, off = rng.choice(starts), rng.choice(fields)
            raw[j + off:j + off + 2] = rng.choice([b"\x01\x00", b"\x09\x00", b"\xff\xff", b"\x00\x00", b"\x00\xa1"])
        else:  # a member renamed
            j = rng.choice([j for j in range(len(raw)) if raw.startswith(b".npy", j)])
            raw[j - 1:j] = rng.choice([b"z", b"y", b"x", b"/"])
        p.write_bytes(bytes(raw))
        try:
            arrays = read_npz(p)
        except DataMissingError as exc:  # DataFormatError is one
            assert "\n" not in str(exc), str(exc)
            counts["refused"] += 1
            continue
        assert arrays["x"].dtype == np.float32 and arrays["x"].ndim == 2 and np.isfinite(arrays["x"]).all()
        assert arrays["y"].dtype == np.int64 and len(arrays["y"]) == len(arrays["x"])
        counts["read"] += 1
    print("fuzz counts (.npz members)", counts)
    assert sum(counts.values()) == 300 and counts["refused"] > 150


def test_run_series_with_odd_arguments_is_one_sentence(tmp_path):
    from ibtui.errors import IbtuiError
    from ibtui.sinks.runs import load

    run = load(_export(tmp_path)[0])
    for kw in ({"seed": [1]}, {"seed": {}}, {"seed": None}, {"layer": object()}, {"estimator": 5}, {"sweep": 3}):
        with pytest.raises(IbtuiError):
            run.series("I(X;T)", **kw)
    with pytest.raises(IbtuiError, match="no quantity 123"):
        run.series(123)
    assert run.series("I(X;T)", seed=0)[1].tolist() == [1.0, 2.0, 3.0]
