"""The Python API: the README's notebook example runs as written; `ibtui.run` → `Run` round-trips the export
exactly; bad input is the CLI's sentence, raised; `Run.series` and `Run.frame` say what is there."""
from __future__ import annotations

import csv
import re
import sys

import numpy as np
import pytest

import ibtui
from conftest import REPO, cli
from ibtui.errors import IbtuiError

TINY = {"run.seeds": 2, "run.epochs": 20, "measure.snapshots": 8, "run.device": "cpu"}


def test_the_readme_notebook_example_runs_as_written(tmp_path, monkeypatch, capsys):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", readme[readme.index("## From Python"):], re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(code, {})  # the README's lines, as written
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Run('blobs': 2 seeds, layers ['1', '2', '3', '4'], estimators ['bin30'], up to epoch 300)"
    assert out[1].startswith("I(X;T) of layer 3: ") and " at epoch 300" in out[1]
    acc = float(out[2].removeprefix("test accuracy "))
    assert acc > 0.8  # three blobs 1.5 apart in every dimension: well separated
    assert (tmp_path / "blobs.csv").is_file() and (tmp_path / "blobs.meta.json").is_file()
    ity = eval(out[3], {})  # {layer: final mean I(T;Y)} of the export, through load(...).frame()
    assert set(ity) == {"1", "2", "3", "4"} and all(0 <= v <= np.log2(3) + 1e-6 for v in ity.values())


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    path = tmp_path_factory.mktemp("api") / "tanh.csv"
    run = ibtui.run("szt_tanh", set=TINY, export=path)
    return run, path


def test_run_round_trips_the_export_exactly(exported):
    run, path = exported
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert run.seeds == [0, 1] and run.sweeps == [""]
    assert run.layers == [str(k) for k in run.meta["run_info"]["layers"]] == ["1", "2", "3", "4", "5", "6"]
    assert run.estimators == ["bin30", "kde_upper", "kde_lower"] == run.meta["run_info"]["estimators"]
    assert run.meta["finished"] is True and run.meta["scenario"]["run"]["seeds"] == 2
    for q, est, layer, seed in (("I(X;T)", "bin30", "3", "mean"), ("I(T;Y)", "kde_lower", "6", "1"),
                                ("loss_train", "", "", "0"), ("snr", "", "2", "mean")):
        want = sorted((int(r["epoch"]), float(r["value"])) for r in rows if (r["quantity"], r["estimator"],
                      r["layer"], r["seed"]) == (q, est, layer, seed))
        epochs, values = run.series(q, est or None, layer or None, seed if seed == "mean" else int(seed))
        assert epochs.dtype.kind == "i" and len(want) > 1
        assert epochs.tolist() == [e for e, _ in want]
        np.testing.assert_array_equal(values, [v for _, v in want])  # exact: the same text read back
    again = ibtui.load(path)
    assert repr(again.rows) == repr(run.rows) and again.meta == run.meta  # repr: nan == nan
    frame = run.frame()
    assert len(frame) == len(rows) and list(frame.columns) == list(rows[0])
    assert set(frame.seed) == {"0", "1", "mean"}


def test_series_says_what_there_is(exported):
    run, _ = exported
    with pytest.raises(IbtuiError, match=r"no quantity 'I\(X;Y\)'; this run has \[.*'I\(X;T\)'"):
        run.series("I(X;Y)")
    with pytest.raises(IbtuiError, match=r"measured on layers \['1', '2', '3', '4', '5', '6'\]; pass layer="):
        run.series("I(X;T)")
    with pytest.raises(IbtuiError, match=r"no estimator 'sp'; it has \['bin30', 'kde_lower', 'kde_upper'\]"):
        run.series("I(X;T)", "sp", 1)
    with pytest.raises(IbtuiError, match=r"no series for seed 7"):
        run.series("loss_train", seed=7)
    e, v = run.series("I(X;T)", layer=1)  # the run's first estimator: bin30
    assert np.array_equal(v, run.series("I(X;T)", "bin30", "1")[1])


def test_frame_without_pandas_is_one_sentence(exported, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(IbtuiError, match=r"^Run.frame\(\) needs pandas, which is not installed: pip install pandas"):
        exported[0].frame()


def test_bad_input_is_the_cli_sentence(tmp_path, exported):
    _, path = exported
    cases = [(("szt_tanh",), {"set": {"run.seedz": 2}}, ("szt_tanh", "--set", "run.seedz=2")),
             (("szt_tanhh",), {}, ("szt_tanhh",)),
             (("szt_tanh",), {"set": {"run.epochs": -1}}, ("szt_tanh", "--set", "run.epochs=-1")),
             (("szt_tanh",), {"export": path}, ("szt_tanh", "--export", path)),
             (("szt_tanh",), {"threads": -1}, ("szt_tanh", "--threads", "-1"))]
    for args, kw, cli_args in cases:
        with pytest.raises(IbtuiError) as err:
            ibtui.run(*args, **kw)
        res = cli(*cli_args, "-q")
        assert res.returncode == 2 and res.stderr.strip() == f"ibtui: {err.value}", (res.stderr, err.value)
    with pytest.raises(IbtuiError, match="no such file"):
        ibtui.load(tmp_path / "absent.csv")


# ---- issue 34: `set` goes through the --set parser; every bad argument is an IbtuiError, before any file is written
@pytest.mark.parametrize("kw, words", [
    ({"set": {"run": {"seeds = 1, epochs": 7}}}, "the key run.seeds = 1, epochs is not a dotted name of settings"),
    ({"set": {"run.seeds=3 #": 2}}, "the key run.seeds=3 # is not a dotted name"),
    ({"set": {b"run.seeds": 2}}, "the key b'run.seeds' is not a dotted name"),
    ({"set": {"name": None}}, "NoneType is not a setting's value"),
    ({"set": {"name": b"x"}}, "bytes is not a setting's value"),
    ({"set": {"model.hidden": [4, None]}}, "NoneType is not a setting's value"),
    ({"set": ["run.seeds=2"]}, "give the settings as a dict of dotted names to values"),
    ({"set": "run.seeds=2"}, "give the settings as a dict of dotted names to values"),
    ({"threads": 1.5}, "--threads 1.5 is not a whole number"),
    ({"threads": True}, "--threads True is not a whole number"),
    ({"set": {"name": "a\udc80b"}}, "holds the byte 0x80, which is not UTF-8 text"),
    ({"set": {"name": "a\x00b"}}, "holds the character U+0000, which is not printable text"),
    ({"set": {"name": "a\x1b[2Jb"}}, "holds the character U+001B"),
    ({"set": {"name": "a\u2028b"}}, "holds the character U+2028"),
    ({"export": 5}, "export=5: give a file path"),
    ({"device": 0}, "device=0: give auto, cpu, cuda or cuda:N as a str"),
])
def test_bad_arguments_are_one_sentence_before_any_file(tmp_path, kw, words):
    out = tmp_path / "run.csv"
    kw = {"export": out, **kw}
    with pytest.raises(IbtuiError) as err:
        ibtui.run("szt_tanh", **kw)
    assert words in str(err.value) and "\n" not in str(err.value), str(err.value)
    str(err.value).encode("utf-8")  # printable as it is: a lone surrogate is shown escaped
    assert list(tmp_path.iterdir()) == []


def test_scenario_and_path_arguments_of_the_wrong_type():
    for call, words in ((lambda: ibtui.run(123), "scenario=123: give a file path (a str or pathlib.Path), not int."),
                        (lambda: ibtui.run(None), "scenario=None: give a file path"),
                        (lambda: ibtui.load(123), "export=123: give a file path (a str or pathlib.Path), not int."),
                        (lambda: ibtui.load(b"run.csv"), "export=b'run.csv': give a file path")):
        with pytest.raises(IbtuiError, match=re.escape(words)):
            call()


def test_set_is_spelled_as_the_cli_would_and_refused_alike(tmp_path):
    from ibtui.api import overrides

    assert overrides({"run": {"seeds": 2, "epochs": 7}, "name": 'a "quoted" \\ name', "model.hidden": (4, 2),
                      "train.lr": np.float64(0.5), "run.first_seed": np.int64(3)}) == [
        "run.seeds=2", "run.epochs=7", 'name="a \\"quoted\\" \\\\ name"', "model.hidden=[4, 2]", "train.lr=0.5",
        "run.first_seed=3"]
    for settings, cli_args in (({"run": {"seeds epochs": 7}}, ("--set", "run.seeds epochs=7")),
                               ({"name": "a\x00b"}, ("--set", 'name="a\\u0000b"'))):
        with pytest.raises(IbtuiError) as err:
            ibtui.run("szt_tanh", set=settings)
        res = cli("szt_tanh", *cli_args, "-q", "-o", tmp_path / "x.csv")
        assert res.returncode == 2 and res.stderr.strip() == f"ibtui: {err.value}", (res.stderr, err.value)
    assert not (tmp_path / "x.csv").exists()


def test_a_latin1_byte_in_set_is_one_sentence_and_writes_nothing(tmp_path):
    import os
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(REPO), "LC_ALL": "C.UTF-8"}
    res = subprocess.run([sys.executable, "-m", "ibtui", "szt_tanh", "-q", "-o", "run.csv", "--set",
                          b"name=caf\xe9"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip() == "ibtui: --set name=caf\\xe9: holds the byte 0xe9, which is not UTF-8 text; write " \
                                 "settings as UTF-8.", res.stderr
    assert list(tmp_path.iterdir()) == []
