"""Runs compared (`ibtui plot a.csv b.csv … -o DIR`): one figure per kind, every run in it, labelled by run.

- `compare_info_plane`: the information planes side by side, a row per estimator and a column per run, on
  shared axes within a row (one epoch colour scale for all), so tanh against ReLU reads at a glance;
- `compare_dynamics`: gradient SNR, mean, std and weight change per layer, the runs overlaid (colour = run,
  line style = layer), mean over seeds;
- `compare_training`: loss and accuracy, train solid and test dashed, the runs overlaid (colour = run).

Runs may differ in layers, estimators and seeds: a run lacking an estimator leaves its panel with a note,
and each run draws its own layers. A sweep export is compared at its first sweep value (the title says so).
The drawing helpers are figures.py's; the export is read by sinks/runs.py.
"""
from __future__ import annotations

import math
import textwrap
from pathlib import Path

from ibtui import quantities as Q
from ibtui.errors import ExportError
from ibtui.sinks.figures import (DYNAMICS, _layer_colors, _mpl, _new_figure, _plot_series, _tidy_log, _xlabel,
                                 plane_panel, save_figures)
from ibtui.sinks.runs import Run, layer_key, load_runs

LAYER_STYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1)), (0, (1, 3)), (0, (8, 2)), (0, (3, 1, 1, 1, 1, 1)))


def run_colors(n: int) -> list:
    return _layer_colors(n)


def _sweep(run: Run) -> str:
    return run.sweeps[0] if run.sweeps else ""


def _suptitle(fig, runs: list[Run], labels: list[str], what: str) -> None:
    swept = [f"{label} at {_sweep(r)}" for r, label in zip(runs, labels) if _sweep(r)]
    head = f"{' vs '.join(labels)}: {what}"
    width = max(60, int(fig.get_figwidth() * 16))
    text = "\n".join(textwrap.fill(part, width) for part in head.split("\n"))
    fig.suptitle(text + (f"\n(sweeps compared at their first value: {'; '.join(swept)})" if swept else ""),
                 fontsize=9.5)


def compare_info_plane(runs: list[Run], labels: list[str]):
    """A row per estimator (any run has), a column per run; shared axes within a row, one epoch colour scale."""
    ests = []
    for r in runs:
        for e in r.estimators_of(_sweep(r), Q.MI_XT):
            if e not in ests and e in r.estimators_of(_sweep(r), Q.MI_TY):
                ests.append(e)
    if not ests:
        return None
    matplotlib, _ = _mpl()
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import LogNorm

    last = max(max(r.last_epoch(_sweep(r)) for r in runs), 10)
    norm, cmap = LogNorm(vmin=1, vmax=last), matplotlib.colormaps["viridis"]
    n = len(runs)
    fig, axes, _ = _new_figure(n * len(ests), n, 3.3, 3.0, extra_w=0.8)
    colors = run_colors(n)
    for row, est in enumerate(ests):
        row_axes = axes[row * n:(row + 1) * n]
        xmax = ymax = 0.0
        for ax, r, label, color in zip(row_axes, runs, labels, colors):
            sweep = _sweep(r)
            if est in r.estimators_of(sweep, Q.MI_XT):
                x, y = plane_panel(ax, r, sweep, est, norm, cmap, True)
                xmax, ymax = max(xmax, x), max(ymax, y)
                points = r.run_info(sweep).get("n_points") or 0
                if points > 1:
                    ax.axvline(math.log2(points), color="0.45", ls="--", lw=0.9, zorder=0)
                    xmax = max(xmax, math.log2(points))
            else:
                ax.text(0.5, 0.5, f"{label} has no {est}", transform=ax.transAxes, ha="center", color="0.35",
                        fontsize=8)
            ax.set_title(f"{label} · {est}", fontsize=8.5, color=color)
            ax.set_xlabel("I(X;T) (bits)")
            ax.set_ylabel("I(T;Y) (bits)")
        for ax in row_axes:
            ax.set_xlim(0, xmax * 1.05 + 1e-9)
            ax.set_ylim(0, ymax * 1.08 + 1e-9)
    cb = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axes, shrink=min(0.9, 1.8 / len(ests)), pad=0.01,
                      aspect=30)
    cb.set_label("epoch", fontsize=8.5)
    _suptitle(fig, runs, labels, "information plane per layer, a column per run\nbold: mean over seeds, "
                                 "faint: each seed; numbers: layer; dashed: log₂N")
    return fig


def compare_dynamics(runs: list[Run], labels: list[str], axis: str = "epoch"):
    """Each dynamics quantity in a panel; colour = run, line style = layer; mean over seeds, log-log."""
    panels = [(q, label) for q, label in DYNAMICS if any(r.has(_sweep(r), q) for r in runs)]
    if not panels:
        return None
    fig, axes, spare = _new_figure(len(panels), 3, 3.5, 2.7)
    colors = run_colors(len(runs))
    for ax, (q, title) in zip(axes, panels):
        for r, label, color in zip(runs, labels, colors):
            sweep = _sweep(r)
            for i, layer in enumerate(sorted(r.layers_of(sweep, q), key=layer_key)):
                mean, _ = r.curves(sweep, q, "", layer)
                _plot_series(ax, mean, {}, color, axis, logy=True, label=f"{label} layer {layer}",
                             ls=LAYER_STYLES[i % len(LAYER_STYLES)])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(_xlabel(axis))
        ax.set_title(title.split(" ‖")[0].split(" √")[0], fontsize=9)
        _tidy_log(ax)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, lw=2) for c in colors] + [
        Line2D([], [], color="0.3", ls=LAYER_STYLES[i % len(LAYER_STYLES)], lw=1.2)
        for i in range(max(len(r.layers) for r in runs))]
    names = list(labels) + [f"layer {i + 1}" for i in range(max(len(r.layers) for r in runs))]
    host = spare[0] if spare else None
    if host is not None:
        host.set_visible(True)
        host.axis("off")
        host.legend(handles, names, loc="center", frameon=False, title="colour: run, line: layer", title_fontsize=8)
    else:
        fig.legend(handles, names, loc="outside right center", frameon=False, title="colour: run, line: layer")
    _suptitle(fig, runs, labels, "gradient and weight dynamics per layer, mean over seeds (Shwartz-Ziv et al. 2019)")
    return fig


def compare_training(runs: list[Run], labels: list[str], axis: str = "epoch"):
    """Loss and accuracy; colour = run, train solid and test dashed; mean over seeds."""
    panels = [(name, ylabel, qs) for name, ylabel, qs in (
        ("loss", "cross-entropy loss (nats)", (Q.LOSS_TRAIN, Q.LOSS_TEST)),
        ("accuracy", "accuracy (fraction correct)", (Q.ACC_TRAIN, Q.ACC_TEST)))
        if any(r.has(_sweep(r), q) for r in runs for q in qs)]
    if not panels:
        return None
    fig, axes, _ = _new_figure(len(panels), 2, 3.8, 3.0, extra_w=1.4)
    colors = run_colors(len(runs))
    for ax, (title, ylabel, qs) in zip(axes, panels):
        for r, label, color in zip(runs, labels, colors):
            for q, ls, part in zip(qs, ("-", "--"), ("train", "test")):
                if r.has(_sweep(r), q):
                    mean, _ = r.curves(_sweep(r), q)
                    _plot_series(ax, mean, {}, color, axis, logy=False, logx=False, label=f"{label} {part}", ls=ls)
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlim(left=0)
        ax.set_xlabel(_xlabel(axis))
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=9)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside right center", frameon=False, title="solid: train, dashed: test")
    _suptitle(fig, runs, labels, "training, mean over seeds")
    return fig


COMPARISONS = (("compare_info_plane", compare_info_plane), ("compare_dynamics", compare_dynamics),
               ("compare_training", compare_training))


def draw_comparison(paths: list[str | Path], out_dir: str | Path | None = None, fmt: str = "png",
                    overwrite: bool = False, skipped: list[str] | None = None) -> list[Path]:
    """Write the comparison figures of 2-8 exports to out_dir (default `comparison_figures` beside the first);
    refuses (ExportError) before drawing when a target exists and `overwrite` is false."""
    fmt = fmt.lower().lstrip(".")
    if fmt not in ("png", "pdf", "svg"):
        raise ExportError(f"--format {fmt}: not one of png, pdf, svg.")
    runs, labels = load_runs(paths)
    out = Path(out_dir) if out_dir is not None else Path(paths[0]).with_name("comparison_figures")
    existing = [p for p in (out / f"{name}.{fmt}" for name, _ in COMPARISONS) if p.exists()]
    if existing and not overwrite:
        raise ExportError(f"{existing[0]}{f' and {len(existing) - 1} more' if len(existing) > 1 else ''} "
                          f"already exist{'s' if len(existing) == 1 else ''}; pass --overwrite or pick another -o.")
    drawn = []
    for name, fn in COMPARISONS:
        fig = fn(runs, labels)
        if fig is None:
            if skipped is not None:
                skipped.append(name)
        else:
            drawn.append((out / f"{name}.{fmt}", fig))
    return save_figures(out, drawn, fmt)
