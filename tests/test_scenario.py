"""Scenario parsing: every bad-input case gives one clear sentence (and exit 2 from the CLI)."""
from pathlib import Path

import pytest

from conftest import REPO, cli
from ibtui.scenario import ScenarioError, load_scenario, parse_scenario, to_toml

BUNDLED = sorted((REPO / "scenarios").glob("*.toml"))


def error_of(text: str, overrides=()) -> str:
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(text, "s.toml", overrides)
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith(("s.toml", "--set "))  # an error in a --set names the --set
    return msg


def test_defaults_round_trip_through_show():
    sc = parse_scenario("")
    assert parse_scenario(to_toml(sc)) == sc


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.name)
def test_bundled_scenarios_parse_and_round_trip(path):
    sc = load_scenario(path)
    assert sc.name == path.stem
    assert parse_scenario(to_toml(sc)) == sc


def test_szt_tanh_has_the_original_settings():
    sc = load_scenario(REPO / "scenarios" / "szt_tanh.toml")
    assert sc.model.hidden == [10, 7, 5, 4, 3] and sc.model.activation == "tanh"
    assert (sc.train.optimizer, sc.train.lr, sc.train.batch_size) == ("adam", 4e-4, 512)
    assert sc.run.epochs >= 8000
    assert (sc.measure.binning.bins, sc.measure.binning.range) == (30, [-1.0, 1.0])
    assert sc.measure.schedule == "log" and sc.data.mi_points == "all"
    assert load_scenario(REPO / "scenarios" / "szt_relu.toml").measure.binning.range == "auto"


def test_syntax_error_names_the_line():
    msg = error_of('name = "x"\n[run]\nseeds = = 3\n')
    assert "TOML syntax error" in msg and "line 3" in msg


def test_unknown_key_suggests_the_closest():
    assert "did you mean 'train.batch_size'" in error_of("[train]\nbatchsize = 3\n")
    assert "did you mean 'measure'" in error_of("[measures]\nsnapshots = 3\n")


def test_wrong_type():
    msg = error_of('[run]\nepochs = "many"\n')
    assert "run.epochs" in msg and "wrong type" in msg and "integer" in msg
    assert "true or false" in error_of("[data]\nsplit_per_seed = 1\n")


def test_out_of_range_and_bad_choice():
    assert "run.seeds = 0 is out of range" in error_of("[run]\nseeds = 0\n")
    assert "> 0.0" in error_of("[train]\nlr = 0.0\n")
    assert "use one of: adam, sgd" in error_of('[train]\noptimizer = "rmsprop"\n')
    assert "lo < hi" in error_of("[measure.binning]\nrange = [1.0, -1.0]\n")
    assert "noise_start" in error_of("[model]\nnoise_levels = [0.0]\nnoise_start = 1\n")
    assert "did you mean 'binning'" in error_of('[measure]\nestimators = ["bining"]\n')


def test_set_overrides_any_setting():
    sc = parse_scenario("", overrides=["train.lr=1e-3", "model.hidden=[4, 3]", "train.optimizer=sgd",
                                       "measure.binning.range=\"auto\""])
    assert sc.train.lr == 1e-3 and sc.model.hidden == [4, 3] and sc.train.optimizer == "sgd"
    assert sc.measure.binning.range == "auto"
    assert "did you mean 'train.lr'" in error_of("", ["train.lrr=3"])
    with pytest.raises(ScenarioError, match="section.key=value"):
        parse_scenario("", overrides=["train.lr"])


def test_missing_file():
    with pytest.raises(ScenarioError, match="no such scenario file"):
        load_scenario(Path("does/not/exist.toml"))


@pytest.mark.parametrize("args, fragment", [
    (["run", "missing.toml"], "no such scenario file"),
    (["scenarios/szt_tanh.toml", "--set", "run.seedz=2"], "did you mean 'run.seeds'"),
    (["scenarios/szt_tanh.toml", "--set", "train.lr=-1"], "out of range"),
    (["scenarios/szt_tanh.toml", "--set", "run.epochs=\"x\""], "wrong type"),
    (["scenarios/szt_tanh.toml", "--device", "tpu"], "not a device"),
    (["scenarios/szt_tanh.toml", "--export", "no/such/dir/run.csv"], "does not exist"),
])
def test_cli_bad_input_is_one_sentence_and_exit_2(args, fragment):
    res = cli(*args)
    assert res.returncode == 2, res.stderr
    assert fragment in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_cli_syntax_error_exit_2(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[run]\nseeds = [\n")
    res = cli(bad)
    assert res.returncode == 2 and "TOML syntax error" in res.stderr and "line" in res.stderr
    assert "Traceback" not in res.stderr


def test_cli_cuda_absent_exit_2():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    res = cli("scenarios/szt_tanh.toml", "--device", "cuda")
    assert res.returncode == 2 and "no usable CUDA device" in res.stderr and "Traceback" not in res.stderr


def test_cli_show_prints_resolved_scenario():
    res = cli("show", "scenarios/szt_tanh.toml", "--set", "run.seeds=7")
    assert res.returncode == 0
    sc = parse_scenario(res.stdout)
    assert sc.run.seeds == 7 and sc.model.hidden == [10, 7, 5, 4, 3]


def test_bundled_scenarios_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = cli("show", "szt_tanh", "--set", "run.seeds=3")
    assert res.returncode == 0 and parse_scenario(res.stdout).run.seeds == 3
    assert cli("show", "szt_tanh.toml").returncode == 0
    res = cli("show", "szt_tan")
    assert res.returncode == 2 and "did you mean 'szt_tanh'" in res.stderr


def test_scenarios_command_lists_every_bundled_scenario_with_its_description():
    res = cli("scenarios")
    lines = res.stdout.strip().splitlines()
    assert res.returncode == 0 and len(lines) == len(BUNDLED)
    assert any(line.startswith("szt_tanh ") and "Shwartz-Ziv & Tishby 2017" in line for line in lines)


def test_the_wheel_ships_the_bundled_scenarios():
    import tomllib

    data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["ibtui"]
    assert "scenarios/*.toml" in data and (REPO / "ibtui" / "scenarios").is_dir() and BUNDLED
    assert all(p.parent.resolve() == (REPO / "ibtui" / "scenarios").resolve() for p in BUNDLED)
