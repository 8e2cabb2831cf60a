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
