"""Issue 22, hostile input round two: each kind of case ends in one sentence and exit 2 (or reads back what ibtui
wrote), checked in-process where no process is needed. Files in tmp folders only."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO
from ibtui.records import Record
from ibtui.sinks.csv import CsvSink, sidecar_path
from test_safety import cli, refused

SC = REPO / "ibtui" / "scenarios" / "szt_tanh.toml"


def _export(folder, name="t", records=None):
    """A small genuine export (written by CsvSink, no training)."""
    path = folder / "run.csv"
    sink = CsvSink(path, {}, "")
    sink.emit(records or [Record(name, s, e, 0, "1", "I(X;T)", "bin30", 1.0 + e) for e in range(3) for s in (0, "mean")])
    sink.close(True)
    return path


# ---- paths: one check for every path ibtui opens
@pytest.mark.parametrize("target, words", [("", "folder"), (".", "folder"), ("/", "folder"),
                                           ("x" * 300 + ".csv", "255-byte")])
def test_export_paths_that_cannot_be_files(tmp_path, monkeypatch, target, words):
    monkeypatch.chdir(tmp_path)
    refused(cli("szt_tanh", "-o", target, "--threads", "1"), words)
    assert sorted(os.listdir(tmp_path)) == []


def test_the_scenario_is_never_the_export(tmp_path):
    sc = tmp_path / "sc.toml"
    sc.write_bytes(SC.read_bytes())
    for extra in ([], ["--overwrite"]):
        refused(cli(sc, "-o", sc, "--threads", "1", *extra), "input of this run")
    assert sc.read_bytes() == SC.read_bytes()


def test_long_scenario_name_and_special_files_as_scenario(tmp_path):
    refused(cli("show", tmp_path / ("s" * 300 + ".toml")))
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    refused(cli("show", fifo))


@pytest.mark.parametrize("kind", ["folder", "fifo", "device"])
@pytest.mark.parametrize("command", ["view", "plot"])
def test_view_and_plot_of_special_files_never_block(tmp_path, kind, command):
    target = {"folder": tmp_path, "device": "/dev/zero"}.get(kind, tmp_path / "fifo.csv")
    if kind == "fifo":
        os.mkfifo(target)
    err = refused(cli(command, target))
    assert "no such file" not in err and ("folder" in err or "FIFO" in err or "device" in err), err


def test_plot_never_writes_over_its_input_and_writes_atomically(tmp_path):
    path = _export(tmp_path)
    refused(cli("plot", path, "-o", tmp_path / "run.meta.json"))
    res = cli("plot", path)
    assert res.exit_code == 0, res.output
    assert not [p for p in (tmp_path / "run_figures").iterdir() if p.name.startswith(".")]


# ---- exports read back: the sidecar schema and the CSV fields
@pytest.mark.parametrize("meta", [[], {"scenario": {"model": "mlp"}, "run_info": {"seeds": 3}},
                                  {"run_info": {"run": "t", "seeds": 3, "layers": "12"}, "scenario_toml": "x = ["},
                                  {"sweep_points": [1, {"sweep": 2}], "writer": {"pid": "x"}, "finished": "yes"}])
def test_hostile_sidecars_never_crash_a_reader(tmp_path, meta):
    from ibtui.sinks.figures import read_export
    from ibtui.sinks.replay import CsvReplay, check_export

    path = _export(tmp_path)
    sidecar_path(path).write_text(json.dumps(meta))
    check_export(path)
    ex = read_export(path)
    assert isinstance(ex.scenario(), dict) and isinstance(ex.run_info(), dict) and ex.finished() is False
    assert CsvReplay(path).info is None
    assert cli("plot", path).exit_code == 0


def test_sidecar_scenario_is_parsed_like_a_scenario(tmp_path):
    from ibtui.scenario import load_scenario, to_dict, to_toml
    from ibtui.sinks.replay import read_meta

    path = _export(tmp_path)
    sc = load_scenario(SC)
    sidecar_path(path).write_text(json.dumps({"scenario": {"model": "x"}, "scenario_toml": to_toml(sc)}))
    assert read_meta(path)["scenario"] == json.loads(json.dumps(to_dict(sc)))


def test_what_ibtui_writes_it_reads_back(tmp_path):
    """A 140,000-character name, NUL, U+2028 and quotes in a field: a genuine export reads back record for record."""
    from ibtui.sinks.runs import read_records
    from ibtui.sinks.figures import read_export
    from ibtui.sinks.replay import CsvReplay, check_export

    names = ["n" * 140_000, "a\u2028b", 'q"uo,te\nline']
    recs = [Record(n, 0, 0, 0, "1", "I(X;T)", "bin30", 1.0) for n in names]
    path = _export(tmp_path, records=recs)
    check_export(path)
    assert read_records(path) == recs and len(CsvReplay(path).read_new()) == 3
    assert sum(len(v) for v in read_export(path).rows.values()) == 3


def test_unterminated_quote_is_a_sentence(tmp_path):
    path = _export(tmp_path)
    with open(path, "a") as f:
        f.write('t,,0,5,0,1,"I(X;T),bin30,1.0\n' + "x" * 200_000 + "\n")
    res = cli("plot", path)
    assert res.exit_code in (0, 2) and "Traceback" not in res.output


# ---- messages: control characters escaped, --set blamed, output encodings
def test_escape_sequences_in_a_key_are_shown_escaped(tmp_path):
    sc = tmp_path / "sc.toml"
    sc.write_text('[run]\n"\\u001b[2J\\u001b[Hboom" = 1\n')
    err = refused(cli("show", sc))
    assert "\x1b" not in err and "\\x1b[2J" in err


def test_show_on_a_latin1_terminal_and_into_a_full_or_closed_stdout(tmp_path):
    env = {**os.environ, "PYTHONIOENCODING": "latin-1", "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, "-m", "ibtui", "show", "szt_tanh"], capture_output=True, env=env,
                         timeout=60, cwd=tmp_path)
    assert res.returncode == 0 and b"Traceback" not in res.stderr, res.stderr
    with open("/dev/full", "w") as full:
        res = subprocess.run([sys.executable, "-m", "ibtui", "show", "szt_tanh"], stdout=full, stderr=subprocess.PIPE,
                             env=env, timeout=60, cwd=tmp_path, text=True)
    assert res.returncode == 2 and "Traceback" not in res.stderr and res.stderr.startswith("ibtui: "), res.stderr


def test_permission_denied_on_the_scenario_folder(tmp_path):
    from test_files import as_nobody

    from ibtui.errors import ScenarioError
    from ibtui.scenario import find_scenario

    (tmp_path / "locked").mkdir(mode=0o700)
    (tmp_path / "locked" / "sc.toml").write_bytes(SC.read_bytes())
    os.chmod(tmp_path, 0o755)
    got = as_nobody(lambda: find_scenario(tmp_path / "locked" / "sc.toml"))
    assert isinstance(got, ScenarioError) and "permission denied" in str(got), got
