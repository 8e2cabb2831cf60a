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
from test_safety import cli, earlier, refused  # noqa: F401 (earlier: a fixture)

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


# ---- numeric ranges in the scenario layer (float32 where the engine computes in float32), sweeps, --set blame
@pytest.mark.parametrize("setting, words", [
    ("model.init_weight=1e308", "float32"), ("measure.kde.noise_variance=1e-310", "out of range"),
    ("measure.kde.noise_variance=1e-100", "≥ 1e-10"), ("model.noise_levels=[1e308]", "out of range"),
    ("model.noise_levels=[1e-300]", "float32"), ("measure.binning.width=1e-30", "too narrow"),
    ("trian.lr=1e-3", "unknown key 'trian'"), ("a..b=1", "empty part")])
def test_settings_show_accepted_and_run_crashed_on(setting, words):
    err = refused(cli("show", "szt_tanh", "--set", setting), words)
    assert err.startswith(f"ibtui: --set {setting}:"), err


def test_sweep_values_twice_or_out_of_range_blame_the_set():
    sweep = ["--set", 'sweep.setting="train.batch_size"']
    refused(cli("show", "szt_tanh", *sweep, "--set", "sweep.values=[64,64]"), "--set sweep.values=[64,64]", "twice")
    refused(cli("show", "szt_tanh", *sweep, "--set", "sweep.values=[1e30]"), "--set sweep.values=[1e30]")


# ---- environment and machine
def test_world_size_without_torchrun_is_refused_and_writes_nothing(tmp_path):
    for env, words in [({"WORLD_SIZE": "2", "RANK": "0"}, "torchrun"), ({"WORLD_SIZE": "2", "RANK": "5"}, "RANK=5"),
                       ({"WORLD_SIZE": "x"}, "integers")]:
        refused(cli("szt_tanh", "-o", tmp_path / "run.csv", "--threads", "1", env=env), words)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow  # over 2 s: keeps the README's fast set under 3 minutes on 2 cores
def test_show_of_20000_sweep_values(tmp_path):
    """A sweep point no longer copies every value: show of a long sweep lists each point once."""
    sc = tmp_path / "sweep.toml"
    sc.write_text(SC.read_text() + '\n[sweep]\nsetting = "train.lr"\nvalues = [' +
                  ", ".join(f"{1e-4 + i * 1e-8:.8g}" for i in range(20_000)) + "]\n")
    res = cli("show", sc)
    assert res.exit_code == 0, res.output


def test_threads_beyond_the_cores_are_refused():
    refused(cli("szt_tanh", "--threads", str(len(os.sched_getaffinity(0)) + 1)), "CPU cores")


def test_ctrl_c_right_after_start_of_show(tmp_path):
    import signal
    import time

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for delay in (0.1, 0.2, 0.4):
        p = subprocess.Popen([sys.executable, "-m", "ibtui", "show", "szt_tanh"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=env, cwd=tmp_path, text=True)
        time.sleep(delay)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        if "init_import_site" in err or "Error processing line" in err:
            continue  # interrupted inside Python's own start-up (site and its .pth files), before any ibtui code
        assert p.returncode in (130, -signal.SIGINT, 0) and "Traceback" not in err, (delay, p.returncode, err)


# ---- data files: the IDX header is checked against the file before anything is inflated
def _idx(magic: int, dims: tuple, data: bytes) -> bytes:
    return magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims) + data


@pytest.mark.parametrize("dims, data, gz, words", [
    ((0, 28, 28), b"", False, "0 items"), ((2**31, 2**31, 4), b"", False, "more than an MNIST-like"),
    ((2**31, 2**31, 4), b"", True, "more than an MNIST-like"), ((10, 28, 28), b"\0" * 100, True, "truncated"),
    ((1000, 28, 28), b"\0" * (1000 * 784), True, None)])
def test_idx_sizes_checked_before_inflating(tmp_path, dims, data, gz, words):
    import gzip

    from ibtui.data.images import IDX_IMAGES_MAGIC, read_idx
    from ibtui.errors import DataFormatError

    raw = _idx(IDX_IMAGES_MAGIC, dims, data)
    path = tmp_path / ("x.idx.gz" if gz else "x.idx")
    path.write_bytes(gzip.compress(raw) if gz else raw)
    if words is None:
        assert read_idx(path, IDX_IMAGES_MAGIC).shape == dims
        return
    with pytest.raises(DataFormatError, match=words):
        read_idx(path, IDX_IMAGES_MAGIC)


def test_gzip_bomb_is_refused_by_its_trailer(tmp_path):
    """A gzip whose IDX header says 1,000 images but which inflates to far more: refused before inflating."""
    import gzip

    from ibtui.data.images import IDX_IMAGES_MAGIC, read_idx
    from ibtui.errors import DataFormatError

    path = tmp_path / "bomb.gz"
    path.write_bytes(gzip.compress(_idx(IDX_IMAGES_MAGIC, (1000, 28, 28), b"\0" * (64 << 20))))
    with pytest.raises(DataFormatError, match="truncated or corrupt"):
        read_idx(path, IDX_IMAGES_MAGIC)


# ---- fuzz: sidecars, CSV fields, environment variables and paths (seeded; each case a sentence or a success)
ODD_JSON = [None, True, 0, -1, 2**70, 1.5, float("nan"), "", "x" * 1000, "\x1b[2J", [], [1, "a"], {}, {"a": [None]}]


def _mutate_json(rng, node, depth=0):
    if isinstance(node, dict) and node and depth < 4 and rng.random() < 0.7:
        k = rng.choice(list(node))
        node[k] = _mutate_json(rng, node[k], depth + 1)
        return node
    if isinstance(node, list) and node and depth < 4 and rng.random() < 0.7:
        i = rng.randrange(len(node))
        node[i] = _mutate_json(rng, node[i], depth + 1)
        return node
    return rng.choice(ODD_JSON)


@pytest.mark.slow
def test_fuzz_sidecars_csv_fields_env_and_paths(tmp_path, earlier):
    import random

    from ibtui.errors import IbtuiError
    from ibtui.files import check_input, check_output
    from ibtui.sinks.replay import CsvReplay, check_export
    from ibtui.sinks.runs import load

    rng = random.Random(22)
    csv_path = earlier / "run.csv"
    meta0 = json.loads(sidecar_path(csv_path).read_text())
    counts = {"sidecar": 0, "csv": 0, "env": 0, "path": 0}
    for i in range(300):  # sidecars: every reader survives any JSON (every 10th also drawn)
        meta = _mutate_json(rng, json.loads(json.dumps(meta0)))
        sidecar_path(csv_path).write_text(json.dumps(meta))
        run = load(csv_path)
        assert isinstance(run.scenario(), dict) and isinstance(run.run_info(), dict)
        CsvReplay(csv_path)
        if i % 10 == 0:
            res = cli("plot", csv_path, "-o", tmp_path / "figs", "--overwrite")
            assert res.exit_code in (0, 2), (meta, res.exception)
        counts["sidecar"] += 1
    sidecar_path(csv_path).write_text(json.dumps(meta0))
    raw = csv_path.read_text().splitlines()
    for _ in range(200):  # CSV fields: quotes, separators, long and control-character fields
        lines = list(raw)
        i = rng.randrange(1, len(lines))
        field = rng.choice(['"', '""', ",", "\x00", "\u2028", "x" * rng.randrange(200_000), '"unterminated', "\r"])
        parts = lines[i].split(",")
        parts[rng.randrange(len(parts))] = field
        lines[i] = ",".join(parts)
        p = tmp_path / "f.csv"
        p.write_text("\n".join(lines) + "\n")
        for reader in (check_export, load):
            try:
                reader(p)
            except IbtuiError as exc:
                assert "\n" not in str(exc)
        counts["csv"] += 1
    for _ in range(40):  # environment variables torchrun, torch and ibtui read
        env = {k: rng.choice(["", "0", "1", "2", "-1", "x", "99999999999999999999", "\x1b"])
               for k in rng.sample(["WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "IBTUI_DATA"],
                                   rng.randrange(1, 4))}
        res = cli("szt_tanh", "-o", tmp_path / "e" / "run.csv", "--threads", "1", "--set", "run.epochs=0", env=env)
        assert res.exit_code in (0, 2) and "Traceback" not in res.output, (env, res.output, res.exception)
        counts["env"] += 1
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for _ in range(200):  # paths: odd names and file kinds, as inputs and outputs
        name = rng.choice(["", ".", "..", "/", "//", "x" * rng.randrange(240, 400), "a\x1bb", "\u2028", str(fifo),
                           "/dev/zero", "/dev/full", "/proc/self/mem", str(tmp_path), str(csv_path), "nope/x.csv"])
        for check in (lambda: check_input(name, "input"), lambda: check_output(name, "--export", inputs=(csv_path,))):
            try:
                check()
            except IbtuiError as exc:
                assert "\x1b" not in str(exc) and "\n" not in str(exc)
        counts["path"] += 1
    print("fuzz counts", counts)
    assert counts == {"sidecar": 300, "csv": 200, "env": 40, "path": 200}
