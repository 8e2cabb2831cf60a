"""`ibtui plot a.csv b.csv -o DIR`: one comparison figure per kind, every run labelled, runs of different layers
and estimators side by side; the same refusals as `ibtui plot`."""
import pytest

pytest.importorskip("matplotlib")

from typer.testing import CliRunner

from helpers import two_runs
from ibtui.cli import app
from ibtui.sinks import compare as C
from ibtui.sinks.runs import load_runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return load_runs(two_runs(tmp_path_factory.mktemp("compare")))


def test_information_planes_side_by_side_per_estimator(runs):
    fig = C.compare_info_plane(*runs)
    panels = [ax for ax in fig.axes if ax.get_xlabel() == "I(X;T) (bits)"]
    assert [ax.get_title() for ax in panels] == ["tanh · bin30", "relu · bin30", "tanh · kde_upper",
                                                 "relu · kde_upper", "tanh · kde_lower", "relu · kde_lower"]
    means = [len([c for c in ax.collections if c.get_gid() == "mean"]) for ax in panels]
    assert means == [6, 3, 6, 0, 6, 0]  # each run its own layers; relu has no KDE: its panel says so
    assert [t.get_text() for t in panels[3].texts] == ["relu has no kde_upper"]
    for left, right in zip(panels[::2], panels[1::2]):  # shared axes within a row
        assert left.get_xlim() == right.get_xlim() and left.get_ylim() == right.get_ylim()
    assert fig._suptitle.get_text().startswith("tanh vs relu: information plane")


def test_dynamics_and_training_overlaid_with_a_colour_a_run(runs):
    fig = C.compare_dynamics(*runs)
    colors = C.run_colors(2)
    snr = next(ax for ax in fig.axes if ax.get_title() == "gradient SNR")
    drawn = [ln for ln in snr.lines if ln.get_gid() == "mean"]
    by_run = [sum(1 for ln in drawn if ln.get_color() == c) for c in colors]
    assert by_run == [len(runs[0][0].layers_of("", "snr")), len(runs[0][1].layers_of("", "snr"))] and by_run[1] < by_run[0]
    legend = [t.get_text() for lg in fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
              for t in lg.get_texts()]
    assert legend[:2] == ["tanh", "relu"] and "layer 1" in legend
    fig = C.compare_training(*runs)
    names = {ln.get_label() for ax in fig.axes for ln in ax.lines}
    assert {"tanh train", "tanh test", "relu train", "relu test"} <= names


@pytest.mark.slow  # over 2 s: keeps the README's fast set under 3 minutes on 2 cores
def test_cli_writes_one_file_per_kind_and_refuses_like_plot(runs, tmp_path):
    a, b = (r.path for r in runs[0])
    res = CliRunner().invoke(app, ["plot", str(a), str(b), "-o", str(tmp_path / "cmp")])
    assert res.exit_code == 0, res.output
    files = sorted(p.name for p in (tmp_path / "cmp").iterdir())
    assert files == ["compare_dynamics.png", "compare_info_plane.png", "compare_training.png"]
    assert all((tmp_path / "cmp" / f).read_bytes()[:4] == b"\x89PNG" for f in files)
    for args, words in ((["plot", str(a), str(b), "-o", str(tmp_path / "cmp")], "already exist"),
                        (["plot", str(a), str(a)], "the same export is given twice"),
                        (["plot", *[str(a)] * 9], "compare at most 8"),
                        (["plot", str(a), str(tmp_path / "none.csv")], "none.csv: no such file")):
        res = CliRunner().invoke(app, args)
        err = res.stderr.strip()
        assert res.exit_code == 2 and err.startswith("ibtui: ") and "\n" not in err and words in err, err
