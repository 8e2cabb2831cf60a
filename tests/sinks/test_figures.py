"""`ibtui plot`: the papers' figures from a real (small) export, a sweep export, a partial one and non-exports."""
import json
import math
import shutil
import sys

import pytest

pytest.importorskip("matplotlib")

from typer.testing import CliRunner

from conftest import REPO
from ibtui.cli import app
from ibtui.engine.sweep import SweepRunner
from ibtui.scenario import load_scenario, to_dict, to_toml
from ibtui.sinks import figures as F
from ibtui.sinks.csv import CsvSink, sidecar_path

SEEDS = 2


def export(path, scenario, overrides):
    sc = load_scenario(REPO / "scenarios" / scenario, ["run.device=cpu", f"run.seeds={SEEDS}", *overrides])
    sink = CsvSink(path, to_dict(sc), to_toml(sc), {"device": "cpu"})
    engine = SweepRunner(sc, scenario_path=scenario)
    sink.close(engine.run(sink))
    return path


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """SZT tanh, binning + KDE, dynamics and clustering on: every per-run figure has data."""
    return export(tmp_path_factory.mktemp("plain") / "run.csv", "szt_tanh.toml",
                  ["run.epochs=120", "measure.snapshots=40", 'measure.estimators=["binning","kde"]',
                   "measure.kde.points=128", "measure.dynamics.enabled=true", "measure.clustering.enabled=true",
                   "measure.clustering.points=128", "train.batch_size=256"])


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return export(tmp_path_factory.mktemp("sweep") / "sweep.csv", "szt_batch_sweep.toml",
                  ["run.epochs=60", "measure.snapshots=16", "sweep.values=[256, 512]"])


@pytest.fixture(scope="module")
def ex(plain):
    return F.read_export(plain)


def lines(ax, gid):
    return [ln for ln in ax.lines if ln.get_gid() == gid]


def visible(fig):
    return [ax for ax in fig.axes if ax.get_visible() and ax.axison]


@pytest.mark.slow  # over 2 s: keeps the README's fast set under 3 minutes on 2 cores
def test_draw_all_writes_one_file_per_figure_and_never_overwrites(plain, tmp_path):
    skipped = []
    paths = F.draw_all(plain, tmp_path / "figs", "png", skipped=skipped)
    assert sorted(p.name for p in paths) == ["clustering.png", "dynamics.png", "gaussian_bound.png",
                                              "info_plane.png", "training.png"], skipped
    assert skipped == [] and all(p.stat().st_size > 10_000 for p in paths)
    assert paths[0].read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(F.ExportError, match="already exist.*--overwrite"):
        F.draw_all(plain, tmp_path / "figs", "png")
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "training.png").write_bytes(b"mine")
    with pytest.raises(F.ExportError, match="training.png already exists; pass --overwrite"):
        F.draw_all(plain, tmp_path / "one", "png")
    assert (tmp_path / "one" / "training.png").read_bytes() == b"mine"  # refused before drawing anything
    assert len(list((tmp_path / "one").iterdir())) == 1
    assert F.default_out_dir(plain) == plain.parent / "run_figures"


def test_information_plane_one_panel_per_estimator(ex):
    fig = F.info_plane(ex)
    panels = [ax for ax in fig.axes if ax.get_xlabel()]
    assert [ax.get_title().split("\n")[0] for ax in panels] == ["bin30", "kde_upper", "kde_lower"]
    assert len(fig.axes) == 4 and fig.axes[-1].get_ylabel() == "epoch"  # three panels and the colour bar
    layers = ex.layers_of("", "I(X;T)", "bin30")
    assert len(layers) == 6
    for ax in panels:
        assert ax.get_xlabel() == "I(X;T) (bits)" and ax.get_ylabel() == "I(T;Y) (bits)"
        gids = [c.get_gid() for c in ax.collections]
        assert gids.count("mean") == len(layers) and gids.count("seed") == SEEDS * len(layers)
        mean = [c for c in ax.collections if c.get_gid() == "mean"]
        assert all(c.get_linewidth()[0] > 2 * next(s for s in ax.collections if s.get_gid() == "seed")
                   .get_linewidth()[0] for c in mean)  # mean bold, seeds faint
        ceiling = [ln for ln in ax.lines if ln.get_xdata()[0] == pytest.approx(12.0)]
        assert len(ceiling) == 1  # log2 4096 from the sidecar
    title = fig._suptitle.get_text()
    assert "szt_tanh" in title and "2 seeds" in title and "batch 256" in title and "tanh 10-7-5-4-3" in title


def test_dynamics_log_log_with_transitions(ex):
    fig = F.dynamics(ex)
    panels = [ax for ax in visible(fig)]
    assert [ax.get_title() for ax in panels] == ["gradient mean", "gradient std", "gradient SNR", "weight norm",
                                                   "weight change"]
    assert len(fig.axes) == 6  # the sixth holds the legend
    declared = [lay for lay in ex.layers_of("", "snr") if math.isfinite(F._transition(ex, "", lay))]
    assert declared, "no transition detected in the fixture run: lengthen it"
    for ax in panels:
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log" and ax.get_xlabel() == "epochs"
        assert "(" in ax.get_ylabel()  # a unit
        assert len(lines(ax, "mean")) == 6 and len(lines(ax, "seed")) == 6 * SEEDS
        assert len(lines(ax, "transition")) == len(declared)
    assert panels[0].get_ylabel() == "‖E[g]‖₂ (nats per unit weight)" and panels[2].get_ylabel() == "SNR (ratio)"
    steps = F.dynamics(ex, axis="step")
    assert steps.axes[0].get_xlabel() == "training steps (iterations)"


def test_gaussian_bound_training_and_clustering(ex):
    gb = F.gaussian_bound(ex)
    (ax,) = visible(gb)
    assert ax.get_ylabel() == "bound on I(T_j−1; T_j) (bits)" and ax.get_xscale() == "log"
    assert 1 <= len(lines(ax, "mean")) <= 6
    tr = F.training(ex)
    loss, acc, gap = visible(tr)
    assert loss.get_ylabel() == "cross-entropy loss (nats)" and acc.get_ylabel() == "accuracy (fraction correct)"
    assert len(lines(loss, "mean")) == 2 and len(lines(loss, "seed")) == 2 * SEEDS  # train and test
    assert [t.get_text() for t in loss.get_legend().get_texts()] == ["train", "test"]
    assert gap.get_title() == "generalisation"
    cl = F.clustering(ex)
    panels = visible(cl)
    assert [ax.get_ylabel() for ax in panels] == [
        "cells (count)", "H_bin (bits)", "homogeneity (fraction)", "spread_ratio (ratio)",
        "close_pairs (fraction of pairs)", "cos_within (cosine)", "cos_between (cosine)"]
    assert all(len(lines(ax, "mean")) == 6 for ax in panels)
    assert "B = 0.1" in cl._suptitle.get_text()


def test_sweep_one_plane_per_value_and_the_sweep_fit(sweep):
    ex = F.read_export(sweep)
    drawn, skipped = F.figures(ex)
    names = [name for name, _ in drawn]
    assert names[:2] == ["info_plane_batch_size_256", "info_plane_batch_size_512"] and names[-1] == "sweep_fit"
    assert {"dynamics_batch_size_512", "training_batch_size_256"} <= set(names)
    assert "clustering" in skipped  # one name for a figure no sweep value has
    assert "batch_size = 512" in F.info_plane(ex, "train.batch_size=512")._suptitle.get_text()
    fig = F.sweep_fit(ex)
    (ax,) = visible(fig)
    assert ax.get_xlabel() == "SNR transition, last hidden layer (iterations)"
    assert ax.get_ylabel() == "compression start (iterations)"
    fit = F.sweep_report(ex).batch_fit()
    assert len(lines(ax, "points")[0].get_xdata()) == fit["n"]
    assert len(lines(ax, "fit")) == (1 if math.isfinite(fit["slope"]) else 0)


def test_sweep_fit_depth_from_the_sweep_report(tmp_path):
    """A constructed depth sweep (τ = 3600 K^−2): the figure shows the report's fit, exponent −2."""
    path = tmp_path / "depth.csv"
    rows = ["run,sweep,seed,epoch,step,layer,quantity,estimator,value"]
    for k in (1, 2, 3):
        tau = 3600 // k ** 2
        for seed in (0, 1):
            for e in (0, tau - 1, tau, 5000):
                rows.append(f"t,model.depth={k},{seed},{e},{e * 7},,acc_train,,{0.99 if e >= tau else 0.5}")
            for layer in range(1, k + 2):
                rows.append(f"t,model.depth={k},{seed},0,0,{layer},I(X;T),bin30,1.0")
    path.write_text("\n".join(rows) + "\n")
    fig = F.sweep_fit(F.read_export(path))
    (ax,) = visible(fig)
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "hidden layers K"
    assert ax.get_ylabel() == "converged iteration (iterations)"
    (fit,) = lines(ax, "fit")
    assert "K^-2.000" in fit.get_label() and "α = 0.5" in fit.get_label()
    assert list(lines(ax, "points")[0].get_ydata()) == pytest.approx([3600 * 7, 900 * 7, 400 * 7])


def test_partial_export_still_plots(plain, tmp_path):
    data = plain.read_bytes()
    part = tmp_path / "part.csv"
    part.write_bytes(data[: len(data) // 2 + 17])  # cut mid-line
    meta = json.loads(sidecar_path(plain).read_text())
    meta.update(finished=False, ended=None)
    sidecar_path(part).write_text(json.dumps(meta))
    ex = F.read_export(part)
    assert {name for name, _ in F.figures(ex)[0]} >= {"info_plane", "training", "dynamics"}
    last = ex.last_epoch("")
    assert 0 < last < F.read_export(plain).last_epoch("")
    assert f"partial: up to epoch {last}" in F.training(ex)._suptitle.get_text()
    shutil.copy(part, tmp_path / "bare.csv")  # no sidecar: still plots, no log2 N ceiling
    fig = F.info_plane(F.read_export(tmp_path / "bare.csv"))
    assert not fig.axes[0].lines


def run_cli(*args):
    res = CliRunner().invoke(app, ["plot", *map(str, args)])
    return res.exit_code, res.stderr.strip().splitlines()


def test_cli_refuses_non_exports_with_one_sentence(tmp_path, plain):
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(bytes(range(256)) * 8)
    text = tmp_path / "other.csv"
    text.write_text("a,b,c\n1,2,3\n")
    empty = tmp_path / "empty.csv"
    empty.write_text("run,sweep,seed,epoch,step,layer,quantity,estimator,value\n")
    for path in (tmp_path / "missing.csv", garbage, text, empty, tmp_path):
        code, err = run_cli(path)
        assert code == 2 and len(err) == 1 and err[0].startswith("ibtui: "), (path, err)
    small = tmp_path / "small.csv"  # loss and accuracy only: one figure, quick to write
    with open(plain) as f:
        small.write_text("".join(line for i, line in enumerate(f) if i == 0 or ",loss_" in line or ",acc_" in line))
    code, err = run_cli(small, "--format", "pdf")
    out = tmp_path / "small_figures"
    assert code == 0 and [p.name for p in out.iterdir()] == ["training.pdf"]
    assert (out / "training.pdf").read_bytes()[:4] == b"%PDF"
    assert err[0] == "ibtui: skipped (no data in the export): info_plane, dynamics, gaussian_bound, clustering"
    code, err = run_cli(small, "--format", "pdf")
    assert code == 2 and err == [f"ibtui: {out / 'training.pdf'} already exists; pass --overwrite or pick another -o."]
    assert run_cli(small, "-o", out, "--format", "pdf", "--overwrite")[0] == 0


def test_cli_without_matplotlib(monkeypatch, plain):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    code, err = run_cli(plain)
    assert code == 2 and err == ["ibtui: plotting needs matplotlib: pip install 'ibtui[plot]'"]
