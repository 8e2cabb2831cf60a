"""Every file ibtui writes goes through files.py (issue 34, item 2): the checkpoint beside an export is part of it
(a user's own file at that name is never deleted or replaced unasked), and the reproduce report, its figures and
time files are written atomically and never through a link; a finished report is not replaced by one read from
fewer runs without --force."""
from __future__ import annotations

import hashlib
import os

import pytest

from conftest import cli
from ibtui.reproduce.report import MARK, finished_runs

TINY = ["szt_tanh", "--set", "run.seeds=2", "--set", "run.epochs=3", "--set", "measure.snapshots=3",
        "--set", "measure.estimators=['binning']", "--device", "cpu", "-q"]


def one_sentence(res, *words) -> str:
    err = res.stderr.strip()
    assert res.returncode == 2, (res.returncode, err[-1500:])
    assert err.startswith("ibtui: ") and "\n" not in err and "Traceback" not in err, err
    for w in words:
        assert w in err, (w, err)
    return err


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_users_own_checkpoint_beside_a_new_export_is_refused_at_start(tmp_path):
    """Issue: model.checkpoint.pt beside `-o model.csv` was deleted when the run finished (replaced on SIGTERM)."""
    own = tmp_path / "model.checkpoint.pt"
    own.write_bytes(b"the user's own weights")
    res = cli(*TINY, "-o", tmp_path / "model.csv")
    one_sentence(res, "model.checkpoint.pt", "already exists", "--overwrite")
    assert own.read_bytes() == b"the user's own weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.checkpoint.pt"]  # no export started either


@pytest.fixture
def outside(tmp_path):
    """A file outside the --out folder that a link inside it points to: it must never be written."""
    f = tmp_path / "precious.md"
    f.write_text("someone's notes\n")
    return f


def test_a_report_through_a_link_replaces_the_link_never_its_target(tmp_path, outside):
    out = tmp_path / "sl"
    out.mkdir()
    (out / "REPRODUCTION.md").symlink_to(outside)
    res = cli("reproduce", "--out", out, "--report-only")
    assert res.returncode == 0, res.stderr
    assert outside.read_text() == "someone's notes\n"
    report = out / "REPRODUCTION.md"
    assert not report.is_symlink() and report.read_text().startswith("# Reproduction report")
    assert MARK.findall(report.read_text()) == ["0"]  # no run under this --out


def test_report_only_never_replaces_a_finished_report_with_fewer_runs_without_force(tmp_path):
    """Issue: `--out docs --report-only` on a folder holding a finished report and no runs wrote a stub over it."""
    out = tmp_path / "docs"
    out.mkdir()
    report = out / "REPRODUCTION.md"
    report.write_text("# Reproduction report\n\n82 kB of verdicts\n")  # an older report: no run count in it
    before = sha(report)
    one_sentence(cli("reproduce", "--out", out, "--report-only"), "finished report", "--force")
    assert sha(report) == before
    report.write_text("# Reproduction report\n<!-- ibtui reproduce: 7 finished runs read -->\n")
    before = sha(report)
    one_sentence(cli("reproduce", "--out", out, "--report-only"), "7 finished runs", "give none")
    assert sha(report) == before and not (out / "figures").exists()  # refused before any figure was made
    assert finished_runs(out) == 0
    res = cli("reproduce", "--out", out, "--report-only", "--force")
    assert res.returncode == 0, res.stderr
    assert MARK.findall(report.read_text()) == ["0"]


@pytest.mark.parametrize("kind", ["file", "device", "under-a-file"])
def test_an_out_that_is_not_a_folder_is_one_sentence(tmp_path, kind):
    f = tmp_path / "notes.txt"
    f.write_text("x")
    out = {"file": f, "device": os.devnull, "under-a-file": f / "sub"}[kind]
    one_sentence(cli("reproduce", "--out", out, "--report-only"), "--out")
    assert f.read_text() == "x"


def test_figures_and_time_files_are_written_atomically_never_through_a_link(tmp_path, outside):
    from ibtui.files import atomic_write
    from ibtui.reproduce import common

    folder = tmp_path / "figures"
    folder.mkdir()
    (folder / "plane.png").symlink_to(outside)
    common.FIGDIR[0], common.SUFFIX[0] = folder, ""
    plt = common._plt()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    assert common.save(fig, "plane") == "figures/plane.png"
    assert outside.read_text() == "someone's notes\n"
    assert not (folder / "plane.png").is_symlink() and (folder / "plane.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in folder.iterdir()) == ["plane.png"]  # no temporary file left
    time_file = tmp_path / "run.time.json"  # runner.execute writes its times with files.atomic_write
    time_file.symlink_to(outside)
    atomic_write(time_file, "{}")
    assert outside.read_text() == "someone's notes\n" and time_file.read_text() == "{}"
