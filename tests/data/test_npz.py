"""Own data (`data.dataset = "npz"`): a good file trains with its own widths; every hostile or broken file is
one sentence and exit 2, and a pickle inside one never runs."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from conftest import cli
from helpers import Payload
from ibtui.data.npz import read_npz
from ibtui.errors import DataFormatError, DataMissingError

TINY = ["--set", "run.epochs=3", "--set", "run.seeds=2", "--set", "measure.snapshots=3", "--device", "cpu", "-q"]


def scenario(folder, path="mine.npz", extra=""):
    f = folder / "own.toml"
    f.write_text(f'name = "own"\n[data]\ndataset = "npz"\npath = "{path}"\n[model]\nhidden = [6, 4]\n{extra}',
                 encoding="utf-8")
    return f


def blobs(n=60, d=5, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    return (rng.normal(size=(n, d)) + y[:, None]).astype("float32"), y.astype("int64")


def refused(res, *words):
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    err = res.stderr.strip()
    assert err.startswith("ibtui: ") and "\n" not in err and "Traceback" not in err, err
    for w in words:
        assert w in err, (w, err)
    return err


def test_own_data_trains_with_its_widths_and_its_test_set(tmp_path):
    x, y = blobs(60, 5, 3)
    np.savez(tmp_path / "mine.npz", x=x, y=y, x_test=x[:9], y_test=y[:9])
    res = cli(scenario(tmp_path), "-o", tmp_path / "run.csv", *TINY)
    assert res.returncode == 0, res.stderr
    meta = json.loads((tmp_path / "run.meta.json").read_text())
    info = meta["run_info"]
    assert info["layer_widths"][-1] == 3 and info["layer_widths"][:2] == [6, 4]  # C = 3 outputs, from the data
    assert any("60 training and 9 test points" in n and "5 features, 3 classes" in n for n in info["notes"])
    assert meta["scenario"]["data"]["path"] == str(tmp_path / "mine.npz")  # relative to the scenario file


def test_without_a_test_set_the_scenario_split_applies(tmp_path):
    x, y = blobs(50, 2, 2)
    np.savez(tmp_path / "mine.npz", x=x, y=y)
    res = cli(scenario(tmp_path), "-o", tmp_path / "run.csv", *TINY, "--set", "data.train_fraction=0.6")
    assert res.returncode == 0, res.stderr
    info = json.loads((tmp_path / "run.meta.json").read_text())["run_info"]
    assert any("50 points split by data.split = 'random', train_fraction 0.6" in n for n in info["notes"])


def test_a_pickled_object_array_is_refused_and_never_runs(tmp_path):
    target = tmp_path / "pwned"
    x, y = blobs()
    obj = np.empty(len(x), dtype=object)
    obj[:] = [Payload(target)] * len(x)
    np.savez(tmp_path / "mine.npz", x=obj, y=y)
    refused(cli(scenario(tmp_path), *TINY), "array x is an object array", "pickle", "never loads")
    assert not target.exists()
    (tmp_path / "mine.npz").write_bytes(pickle.dumps({"x": Payload(target), "y": y}))  # a bare pickle file
    refused(cli(scenario(tmp_path), *TINY), "not a NumPy .npz archive", "pickle")
    assert not target.exists()


@pytest.mark.parametrize("arrays, words", [
    (lambda x, y: {"x": x}, "has no array y"),
    (lambda x, y: {"y": y, "z": x}, "has no array x"),
    (lambda x, y: {"x": x, "y": y, "x_test": x}, "has x_test but no y_test"),
    (lambda x, y: {"x": x[:, 0], "y": y}, "x has shape (60,); it must be N × d"),
    (lambda x, y: {"x": x.reshape(60, 5, 1), "y": y}, "x has shape (60, 5, 1)"),
    (lambda x, y: {"x": x, "y": np.eye(3, dtype="int64")[y]}, "not one-hot"),
    (lambda x, y: {"x": x, "y": y[:-1]}, "x has 60 rows but y has 59 labels"),
    (lambda x, y: {"x": x, "y": y.astype("float32")}, "y has dtype float32; it must hold integer class ids"),
    (lambda x, y: {"x": x.astype(str), "y": y}, "not numbers"),
    (lambda x, y: {"x": np.where(np.arange(60)[:, None] == 7, np.nan, x), "y": y}, "x[7, 0] is nan"),
    (lambda x, y: {"x": np.where(np.arange(60)[:, None] == 3, np.inf, x), "y": y}, "x[3, 0] is inf"),
    (lambda x, y: {"x": x, "y": y - 1}, "y has label -1; class ids are 0…C−1"),
    (lambda x, y: {"x": x, "y": np.where(y == 1, 7, y)}, "labels up to 7 but no point of class 1"),
    (lambda x, y: {"x": x, "y": np.zeros_like(y)}, "class 0 only"),
    (lambda x, y: {"x": x, "y": y, "x_test": x[:4], "y_test": np.array([0, 1, 2, 3])}, "y_test has label 3"),
    (lambda x, y: {"x": x, "y": y, "x_test": x[:4, :2], "y_test": y[:4]}, "x_test has 2 features a row but x has 5"),
    (lambda x, y: {"x": x, "y": y, "x_test": np.full((4, 5), np.nan), "y_test": y[:4]}, "x_test[0, 0] is nan"),
])
def test_a_broken_file_is_one_sentence(tmp_path, arrays, words):
    x, y = blobs()
    np.savez(tmp_path / "mine.npz", **arrays(x, y))
    with pytest.raises(DataFormatError) as err:
        read_npz(tmp_path / "mine.npz")
    assert words in str(err.value) and "\n" not in str(err.value)


def test_through_the_command_line_exit_2(tmp_path):
    x, y = blobs()
    np.savez(tmp_path / "mine.npz", x=x, y=y - 1)
    refused(cli(scenario(tmp_path), *TINY), "data.path", "y has label -1")
    np.save(tmp_path / "one.npy", x)
    refused(cli(scenario(tmp_path, "one.npy"), *TINY), "one bare array (.npy)")
    (tmp_path / "text.npz").write_text("x,y\n1,2\n")
    refused(cli(scenario(tmp_path, "text.npz"), *TINY), "text.npz")
    refused(cli(scenario(tmp_path, "absent.npz"), *TINY), "absent.npz': no such file")
    f = tmp_path / "nopath.toml"
    f.write_text('[data]\ndataset = "npz"\n', encoding="utf-8")
    refused(cli("show", f), "data.dataset = \"npz\" needs data.path")
    refused(cli("show", "szt_tanh", "--set", "data.path=\"x.npz\""), "data.path is read only with data.dataset")


def test_missing_file_is_a_missing_data_error(tmp_path):
    with pytest.raises(DataMissingError):
        read_npz(tmp_path / "nothing.npz")
