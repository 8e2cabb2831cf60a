"""Figures from an export (`ibtui plot run.csv`): the papers' plots drawn from a finished or partial CSV.

One function per figure, each returning a matplotlib `Figure` (or None when the export holds none of its
data), and `draw_all(csv_path, out_dir, fmt)` writing one file per figure:

- `info_plane`: I(X;T) vs I(T;Y) per layer coloured by epoch, one panel per estimator, the mean over seeds
  bold and each seed faint, the log2 N ceiling where the sidecar gives N (Shwartz-Ziv & Tishby 2017, Fig. 3);
- `dynamics`: gradient mean, std and SNR, weight norm and weight change per layer on log-log axes, with each
  layer's drift→diffusion transition (mean over seeds) as a dashed vertical line (Shwartz-Ziv et al. 2019);
- `gaussian_bound`: the Gaussian bound on I(T_j−1;T_j) per layer pair;
- `training`: loss and accuracy, train and test, and the generalisation gaps when measured;
- `clustering`: the clustering table (cells, H_bin, homogeneity, …) per layer over time;
- `sweep_fit`: for a batch-size or depth sweep, the sweep report's fit (compression start vs SNR transition,
  Fig. 1b; convergence vs depth K, Fig. 3), computed by `SweepReport`, never re-fitted here.

A sweep export gets every per-run figure once per sweep value (file names end in the value). The export is
read by `ibtui.sinks.runs.load` (the one reader; complete lines only, so a file still being written reads
too), the sidecar `<stem>.meta.json` for titles, settings and N. matplotlib is imported only when a figure is drawn (Agg,
through `Figure` objects: no pyplot state, no display).
"""
from __future__ import annotations

import math
import re
import textwrap
from pathlib import Path

import numpy as np

# The only imports of other ibtui modules (kept together: they move in refactors).
from ibtui import quantities as Q
from ibtui.errors import ExportError
from ibtui.records import Record, RunInfo, epoch_text
from ibtui.sinks.runs import Curve, Run, layer_key as _layer_key, load
from ibtui.files import AtomicFile, check_output, printable
from ibtui.sinks.csv import sidecar_path
from ibtui.sinks.sweep_report import TRANSITION, SweepReport

Export = Run  # the names figures used before the reader moved to sinks/runs.py
read_export = load

__all__ = ["Export", "ExportError", "read_export", "info_plane", "dynamics", "gaussian_bound", "training",
           "clustering", "sweep_fit", "draw_all", "FIGURES"]

DYNAMICS = tuple((name, Q.QUANTITIES[name].label)
                 for name in (Q.GRAD_MEAN, Q.GRAD_STD, Q.SNR, Q.WEIGHT_NORM, Q.WEIGHT_CHANGE))
CLUSTERING = tuple((name, Q.QUANTITIES[name].label, Q.QUANTITIES[name].unit or "") for name in Q.CLUSTERING)
GAUSSIAN_BOUND = Q.GAUSSIAN_BOUND


# ---------------------------------------------------------------------------------------------- drawing helpers
def _mpl():
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return matplotlib, Figure


STYLE = {"font.size": 8.5, "axes.titlesize": 9, "axes.labelsize": 8.5, "legend.fontsize": 7.5,
         "xtick.labelsize": 7.5, "ytick.labelsize": 7.5, "axes.spines.top": False, "axes.spines.right": False,
         "axes.grid": True, "grid.alpha": 0.25, "grid.linewidth": 0.5, "figure.dpi": 110, "savefig.dpi": 150,
         "lines.solid_capstyle": "round"}
MEAN_LW, SEED_LW = 2.0, 0.7


def _seed_alpha(n_seeds: int) -> float:
    """Faint seed lines, fainter the more seeds there are (50 seeds must not hide the mean)."""
    return max(0.06, min(0.3, 2.5 / max(n_seeds, 1)))


def _new_figure(n_panels: int, ncols: int, panel_w: float = 3.6, panel_h: float = 2.9, extra_w: float = 0.0):
    matplotlib, Figure = _mpl()
    ncols = max(1, min(ncols, n_panels))
    nrows = math.ceil(n_panels / ncols)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(panel_w * ncols + extra_w, panel_h * nrows + 0.7), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    for ax in axes:  # rc_context only lasts the creation: set the look explicitly
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(True, alpha=0.25, linewidth=0.5)
        ax.tick_params(labelsize=7.5)
    return fig, axes[:n_panels], axes[n_panels:]


def _layer_colors(n: int) -> list:
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def _sweep_words(sweep: str) -> str:
    if not sweep:
        return ""
    setting, _, value = sweep.partition("=")
    return f"{setting.rsplit('.', 1)[-1]} = {value}"


def _slug(sweep: str) -> str:
    setting, _, value = sweep.partition("=")
    return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{setting.rsplit('.', 1)[-1]}_{value}").strip("_")


def _fmt_num(v) -> str:
    return f"{v:g}" if isinstance(v, (int, float)) else str(v)


def _settings_line(ex: Export, sweep: str) -> str:
    """Key settings from the sidecar: model, optimiser, batch, data, with the swept value applied."""
    sc = ex.scenario()
    m, t, d = sc.get("model") or {}, sc.get("train") or {}, sc.get("data") or {}
    watched = _watched_words(ex.meta.get("monitor"))
    if watched:  # ibtui.watch: the researcher's own model, loop and data; the scenario holds the measure settings
        m, t, d = {}, {}, {}
    over = {}
    if sweep:
        setting, _, value = sweep.partition("=")
        over[setting] = value
    get = lambda sec, key, dct: over.get(f"{sec}.{key}", dct.get(key))  # noqa: E731
    parts = [watched] if watched else []
    if m:
        hidden = m.get("hidden") or []
        depth = get("model", "depth", m)
        try:
            if depth and int(float(depth)) > 0:
                hidden = hidden[: int(float(depth))]
        except (TypeError, ValueError):
            pass
        kind = m.get("kind", "mlp")
        arch = f"{m.get('activation', '')} {'-'.join(map(str, hidden))}" if kind == "mlp" else kind
        noise = [b for b in (m.get("noise_levels") or []) if b]
        parts.append(arch.strip() + (f", noise β = {'/'.join(map(_fmt_num, noise))}" if noise else ""))
        orth = get("model", "orthonormal", m)
        if orth not in (None, 0, 0.0, "0", "0.0"):
            parts.append(f"orthonormal λ = {orth}")
    if t:
        parts.append(f"{t.get('optimizer', '')} lr {_fmt_num(get('train', 'lr', t))}, "
                     f"batch {get('train', 'batch_size', t)}")
    if d:
        parts.append(f"{d.get('dataset', '')} ({d.get('split', '')} split)")
    seeds = ex.seeds_of(sweep)
    parts.append(f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''}")
    if ex.meta and not ex.finished():  # no sidecar: unknown, so not claimed
        parts.append(f"partial: up to epoch {epoch_text(ex.last_epoch(sweep))}")
    return ", ".join(p for p in parts if p)


def _watched_words(monitor) -> str:
    """'own model Net (20,522 parameters), watched fc1, fc2 on 1000 inputs' from an ibtui.watch sidecar, else ''."""
    if not isinstance(monitor, dict):
        return ""
    models = [m for m in monitor.get("models") or [] if isinstance(m, dict)]
    names = [str(d.get("name")) for d in monitor.get("layers") or [] if isinstance(d, dict)]
    points = (monitor.get("inputs") or {}).get("points") if isinstance(monitor.get("inputs"), dict) else None
    head = (f"own model {models[0].get('class', '')} ({models[0].get('parameters', 0):,} parameters)"
            if models and isinstance(models[0].get("parameters"), int) else "own model")
    return f"{head}, watched {', '.join(names)}" + (f" on {points} inputs" if isinstance(points, int) else "")


def _title(fig, ex: Export, sweep: str, what: str) -> None:
    name = ex.scenario().get("name") or ex.run_name or ex.path.stem
    head = f"{name}{' (' + _sweep_words(sweep) + ')' if sweep else ''}: {what}"
    width = max(60, int(fig.get_figwidth() * 16))  # characters that fit the figure's width
    lines = [textwrap.fill(part, width) for part in (*head.split("\n"), _settings_line(ex, sweep))]
    fig.suptitle("\n".join(lines), fontsize=9.5)


def _positive(x: np.ndarray, y: np.ndarray, logy: bool = True):
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0)
    if logy:
        ok &= y > 0
    return x[ok], y[ok]


def _plot_series(ax, mean: Curve | None, seeds: dict, color, axis: str, logy: bool, logx: bool = True,
                 label: str | None = None, ls: str = "-") -> int:
    """Faint seed lines and a bold mean line; the number of lines drawn."""
    n = 0
    alpha = _seed_alpha(len(seeds))
    for s, c in seeds.items():
        x, y = _positive(c.x(axis), c.value, logy) if logx else _finite(c.x(axis), c.value)
        if len(x):
            ax.plot(x, y, color=color, lw=SEED_LW, alpha=alpha, ls=ls, label=f"_seed {s}", gid="seed")
            n += 1
    if mean is not None:
        x, y = _positive(mean.x(axis), mean.value, logy) if logx else _finite(mean.x(axis), mean.value)
        if len(x):
            ax.plot(x, y, color=color, lw=MEAN_LW, ls=ls, label=label or "_mean", gid="mean")
            n += 1
    return n


def _tidy_log(ax) -> None:
    """Plain numbers (not 3×10⁰) on a log axis spanning under two decades."""
    from matplotlib.ticker import FormatStrFormatter, LogFormatterSciNotation, NullFormatter

    for axis, lim in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
        if axis.get_scale() != "log" or lim[0] <= 0:
            continue
        if lim[1] / lim[0] < 100:
            axis.set_major_formatter(FormatStrFormatter("%g"))
            axis.set_minor_formatter(FormatStrFormatter("%g") if lim[1] / lim[0] < 10 else NullFormatter())
        else:
            axis.set_minor_formatter(NullFormatter())
            axis.set_major_formatter(LogFormatterSciNotation())


def _finite(x, y):
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def _xlabel(axis: str) -> str:
    return "training steps (iterations)" if axis == "step" else "epochs"


def _steps_per_epoch(ex: Export, sweep: str) -> float:
    for q in (Q.LOSS_TRAIN, Q.ACC_TRAIN):
        mean, seeds = ex.curves(sweep, q)
        c = mean or next(iter(seeds.values()), None)
        if c is not None and len(c.epoch) and c.epoch[-1] > 0:
            return float(c.step[-1] / c.epoch[-1])
    return math.nan


# ---------------------------------------------------------------------------------------------- figures
def info_plane(ex: Export, sweep: str = ""):
    """I(X;T) (x) vs I(T;Y) (y) per layer, coloured by epoch; one panel per estimator holding both."""
    ests = [e for e in ex.estimators_of(sweep, Q.MI_XT) if e in ex.estimators_of(sweep, Q.MI_TY)]
    if not ests:
        return None
    matplotlib, _ = _mpl()
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import LogNorm, Normalize

    info = ex.run_info(sweep)
    n_points = info.get("n_points") or 0
    subsets = info.get("estimator_points") or {}
    settings = info.get("estimator_settings") or {}
    last = max(ex.last_epoch(sweep), 1)
    log_epochs = (ex.scenario().get("measure") or {}).get("schedule", "log") == "log" and last >= 10
    norm = LogNorm(vmin=1, vmax=last) if log_epochs else Normalize(vmin=0, vmax=last)
    cmap = matplotlib.colormaps["viridis"]
    one = len(ests) == 1
    fig, axes, _ = _new_figure(len(ests), 3, 4.6 if one else 3.7, 3.8 if one else 3.3, extra_w=0.8)
    for ax, est in zip(axes, ests):
        xmax, ymax = plane_panel(ax, ex, sweep, est, norm, cmap, log_epochs)
        n_est = subsets.get(est) or n_points  # an estimator measuring a subset is bounded by its own log2 N
        ceiling = math.log2(n_est) if n_est and n_est > 1 else math.nan
        if math.isfinite(ceiling):
            ax.axvline(ceiling, color="0.45", ls="--", lw=0.9, zorder=0)
            ax.text(ceiling, 0.02, f" log₂N = {ceiling:.3g}", rotation=90, va="bottom", ha="right",
                    fontsize=7, color="0.35", transform=ax.get_xaxis_transform())
            xmax = max(xmax, ceiling)
        ax.set_xlim(0, xmax * 1.05 + 1e-9)
        ax.set_ylim(0, ymax * 1.08 + 1e-9)
        ax.set_xlabel("I(X;T) (bits)")
        ax.set_ylabel("I(T;Y) (bits)")
        desc = settings.get(est, "")
        ax.set_title(est + ("\n" + textwrap.fill(desc, 52) if desc else ""), fontsize=8.5)
    sm = ScalarMappable(norm=norm, cmap=cmap)
    cb = fig.colorbar(sm, ax=axes, shrink=0.9, pad=0.01, aspect=30)
    cb.set_label("epoch", fontsize=8.5)
    cb.ax.tick_params(labelsize=7.5)
    _title(fig, ex, sweep, "information plane per layer\nbold: mean over seeds, faint: each seed; "
                           "numbers: layer")
    return fig


def plane_panel(ax, ex: Export, sweep: str, est: str, norm, cmap, log_epochs: bool, seeds: bool = True,
                label_layers: bool = True) -> tuple[float, float]:
    """One estimator's information plane on `ax`: a line per layer coloured by epoch (bold mean, faint seeds),
    the layer's name at its last point; returns the largest x and y drawn."""
    from matplotlib.collections import LineCollection

    xmax = ymax = 0.0
    layers = [lay for lay in ex.layers_of(sweep, Q.MI_XT, est) if lay in ex.layers_of(sweep, Q.MI_TY, est)]
    for layer in layers:
        mx, sx = ex.curves(sweep, Q.MI_XT, est, layer)
        my, sy = ex.curves(sweep, Q.MI_TY, est, layer)
        pairs = [(f"seed {s}", sx[s], sy[s], SEED_LW, _seed_alpha(len(sx))) for s in sx if s in sy and seeds]
        if mx is not None and my is not None:
            pairs.append((f"layer {layer}", mx, my, MEAN_LW + 0.4, 1.0))
        for label, cx, cy, lw, alpha in pairs:
            ep, x, y = _joined(cx, cy)
            if len(x) < 1:
                continue
            pts = np.column_stack([x, y])
            segs = np.stack([pts[:-1], pts[1:]], axis=1) if len(pts) > 1 else np.empty((0, 2, 2))
            lc = LineCollection(segs, cmap=cmap, norm=norm, linewidths=lw, alpha=alpha,
                                label=label if alpha == 1.0 else f"_{label} layer {layer}",
                                gid="mean" if alpha == 1.0 else "seed", capstyle="round")
            lc.set_array(np.maximum(ep[1:], 1) if log_epochs else ep[1:])
            ax.add_collection(lc)
            xmax, ymax = max(xmax, float(np.max(x))), max(ymax, float(np.max(y)))
            if alpha == 1.0 and label_layers:  # the layer's name at its last point
                ax.annotate(layer, (x[-1], y[-1]), xytext=(3, 2), textcoords="offset points", fontsize=7,
                            color="0.25")
    return xmax, ymax


def _joined(cx: Curve, cy: Curve):
    """Epochs where both curves have a finite value: (epochs, x, y)."""
    common, ix, iy = np.intersect1d(cx.epoch, cy.epoch, return_indices=True)
    x, y = cx.value[ix], cy.value[iy]
    ok = np.isfinite(x) & np.isfinite(y)
    return common[ok], x[ok], y[ok]


def _transition(ex: Export, sweep: str, layer: str) -> float:
    """Mean over seeds of each seed's last declared transition epoch (as the sweep report), else the mean row."""
    mean, seeds = ex.curves(sweep, TRANSITION, "", layer)
    vals = [v for v in (c.last_finite() for c in seeds.values()) if math.isfinite(v)]
    if vals:
        return float(np.mean(vals))
    return mean.last_finite() if mean is not None else math.nan


def dynamics(ex: Export, sweep: str = "", axis: str = "epoch"):
    """Gradient mean, std, SNR, weight norm and change per layer vs epochs (log-log), transitions dashed."""
    panels = [(q, label) for q, label in DYNAMICS if ex.has(sweep, q)]
    if not panels:
        return None
    layers = sorted({lay for q, _ in panels for lay in ex.layers_of(sweep, q)}, key=_layer_key)
    colors = dict(zip(layers, _layer_colors(len(layers))))
    spe = _steps_per_epoch(ex, sweep) if axis == "step" else 1.0
    trans = {lay: _transition(ex, sweep, lay) * spe for lay in layers}
    snr_form = ((ex.scenario().get("measure") or {}).get("dynamics") or {}).get("snr", "ratio")
    fig, axes, spare = _new_figure(len(panels), 3, 3.5, 2.7)
    for ax, (q, label) in zip(axes, panels):
        for layer in layers:
            mean, seeds = ex.curves(sweep, q, "", layer)
            _plot_series(ax, mean, seeds, colors[layer], axis, logy=True, label=f"layer {layer}")
            if math.isfinite(trans[layer]) and trans[layer] > 0:
                ax.axvline(trans[layer], color=colors[layer], ls="--", lw=0.9, alpha=0.8, gid="transition")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(_xlabel(axis))
        ylabel = {"grad_mean": "‖E[g]‖₂ (nats per unit weight)", "grad_std": "√tr Cov g (nats per unit weight)",
                  "snr": "SNR (ratio)" if snr_form == "ratio" else "SNR (squared ratio)",
                  "weight_norm": "‖W‖_F (Frobenius norm)", "weight_change": "‖W − W₀‖_F (Frobenius norm)"}
        ax.set_ylabel(ylabel[q])
        ax.set_title(label.split(" ‖")[0].split(" √")[0], fontsize=9)
        _tidy_log(ax)
    handles, labels = axes[0].get_legend_handles_labels()
    from matplotlib.lines import Line2D

    handles.append(Line2D([], [], color="0.3", ls="--", lw=0.9))
    labels.append("transition (mean over seeds)")
    if spare:
        spare[0].set_visible(True)
        spare[0].axis("off")
        spare[0].legend(handles, labels, loc="center", frameon=False, title="layer (bold: mean, faint: seeds)",
                        title_fontsize=8)
    else:
        fig.legend(handles, labels, loc="outside right center", frameon=False)
    _title(fig, ex, sweep, "gradient and weight dynamics per layer (Shwartz-Ziv et al. 2019)")
    return fig


def gaussian_bound(ex: Export, sweep: str = "", axis: str = "epoch"):
    """The Gaussian bound on I(T_j−1;T_j) per layer pair against epochs (log x)."""
    pairs = ex.layers_of(sweep, GAUSSIAN_BOUND)
    if not any(np.isfinite(c.value).any() for p in pairs
               for c in [*ex.curves(sweep, GAUSSIAN_BOUND, "", p)[1].values()]):
        return None
    colors = _layer_colors(len(pairs))
    fig, (ax,), _ = _new_figure(1, 1, 5.4, 3.6, extra_w=1.2)
    for layer, color in zip(pairs, colors):
        a, b = layer.split("-") if "-" in layer else (layer, "")
        mean, seeds = ex.curves(sweep, GAUSSIAN_BOUND, "", layer)
        _plot_series(ax, mean, seeds, color, axis, logy=False, label=f"T{a} → T{b}".replace("T0", "X"))
    ax.set_xscale("log")
    ax.set_xlabel(_xlabel(axis))
    ax.set_ylabel("bound on I(T_j−1; T_j) (bits)")
    _tidy_log(ax)
    ax.set_ylim(bottom=0)
    fig.legend(loc="outside right center", frameon=False, title="layer pair")
    dyn = (ex.scenario().get("measure") or {}).get("dynamics") or {}
    w_star = (f"W* = the weights at epoch {dyn.get('bound_epoch', 0)}" if dyn.get("bound_w_star") == "epoch"
              else "W* frozen at each layer's transition")
    _title(fig, ex, sweep, f"Gaussian bound per layer pair (Shwartz-Ziv et al. 2019, eq. 9)\n"
                           f"{w_star}; bold: mean over seeds, faint: each seed")
    return fig


def training(ex: Export, sweep: str = "", axis: str = "epoch"):
    """Loss (nats) and accuracy, train solid and test dashed; the generalisation gaps when present."""
    panels = []
    if ex.has(sweep, Q.LOSS_TRAIN) or ex.has(sweep, Q.LOSS_TEST):
        panels.append(("loss", "cross-entropy loss (nats)",
                       ((Q.LOSS_TRAIN, "train", "-"), (Q.LOSS_TEST, "test", "--"))))
    if ex.has(sweep, Q.ACC_TRAIN) or ex.has(sweep, Q.ACC_TEST):
        panels.append(("accuracy", "accuracy (fraction correct)",
                       ((Q.ACC_TRAIN, "train", "-"), (Q.ACC_TEST, "test", "--"))))
    if ex.has(sweep, "error_gap") or ex.has(sweep, "input_compression_bound"):
        panels.append(("generalisation", "gap or bound (fraction)",
                       (("error_gap", "acc_train − acc_test", "-"),
                        ("input_compression_bound", "input-compression bound", ":"))))
    if not panels:
        return None
    fig, axes, _ = _new_figure(len(panels), 3, 3.6, 2.9)
    color = {"train": "C0", "test": "C3", "acc_train − acc_test": "C2", "input-compression bound": "C4"}
    for ax, (title, ylabel, series) in zip(axes, panels):
        for q, label, ls in series:
            if ex.has(sweep, q):
                mean, seeds = ex.curves(sweep, q)
                _plot_series(ax, mean, seeds, color[label], axis, logy=False, logx=False, label=label, ls=ls)
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlim(left=0)
        ax.set_xlabel(_xlabel(axis))
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=9)
        ax.legend(frameon=False, loc="best", fontsize=7.5)
    _title(fig, ex, sweep, "training (bold: mean over seeds, faint: each seed)")
    return fig


def clustering(ex: Export, sweep: str = "", axis: str = "epoch"):
    """The clustering table over time: one panel per measure, a line per layer."""
    panels = [p for p in CLUSTERING if ex.has(sweep, p[0])]
    if not panels:
        return None
    layers = sorted({lay for q, *_ in panels for lay in ex.layers_of(sweep, q)}, key=_layer_key)
    colors = dict(zip(layers, _layer_colors(len(layers))))
    fig, axes, spare = _new_figure(len(panels), 4, 3.0, 2.5)
    for ax, (q, title, unit) in zip(axes, panels):
        for layer in layers:
            mean, seeds = ex.curves(sweep, q, "", layer)
            _plot_series(ax, mean, seeds, colors[layer], axis, logy=False, logx=False, label=f"layer {layer}")
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlim(left=0)
        if q in ("cells", "spread_ratio"):
            ax.set_yscale("log")
        ax.set_xlabel(_xlabel(axis))
        ax.set_ylabel(f"{q} ({unit})" if unit else q)
        ax.set_title(title, fontsize=9)
    handles, labels = axes[0].get_legend_handles_labels()
    if spare:
        spare[0].set_visible(True)
        spare[0].axis("off")
        spare[0].legend(handles, labels, loc="center", frameon=False, title="bold: mean, faint: seeds")
    else:
        fig.legend(handles, labels, loc="outside right center", frameon=False)
    notes = [n for n in ex.run_info(sweep).get("notes") or [] if str(n).startswith("clustering:")]
    what = "clustering table per layer (Goldfeld et al. 2019)"
    resolved = re.search(r"\((β = [^()]*: B = [^()]*)\)\s*$", notes[0]) if notes else None
    if resolved:
        what += f"; grid cell B and close-pair radius r: {resolved.group(1)}"
    _title(fig, ex, sweep, what)
    return fig


def _sweep_setting(ex: Export) -> str:
    setting = (ex.scenario().get("sweep") or {}).get("setting") or ""
    if not setting:
        setting = next((s.partition("=")[0] for s in ex.sweeps if s), "")
    return setting


def sweep_report(ex: Export) -> SweepReport:
    """The sweep report fed with the export's records (layers from the sidecar, else from the records)."""
    setting = _sweep_setting(ex)
    report = SweepReport(setting=setting)
    for sweep in ex.sweeps:
        info = ex.run_info(sweep)
        layers = tuple(info.get("layers") or ()) or tuple(
            sorted({lay for q in (Q.MI_XT, TRANSITION, "snr") for lay in ex.layers_of(sweep, q, "")}
                   | {lay for est in ex.estimators_of(sweep, Q.MI_XT) for lay in ex.layers_of(sweep, Q.MI_XT, est)},
                   key=_layer_key))
        report.start(RunInfo(run=ex.run_name, scenario_path="", device="", seeds=tuple(ex.seeds_of(sweep)),
                             epochs=0, layers=layers, layer_widths=(), n_points=0, mi_points="",
                             estimators=(), estimator_settings={}, noise_levels=(), sweep=sweep))
    recs = []
    for (sweep, q, est, layer, seed), rows in ex.rows.items():
        if q in (TRANSITION, Q.ACC_TRAIN, Q.MI_XT):
            recs.extend(Record(ex.run_name, seed, e, s, layer, q, est, v, sweep) for e, s, v in rows)
    recs.sort(key=lambda r: r.epoch)
    report.emit(recs)
    report.close(ex.finished())
    return report


def sweep_fit(ex: Export):
    """The sweep report's figure: batch size → compression start vs transition; depth → convergence vs K."""
    setting = _sweep_setting(ex)
    if not setting or not (setting.endswith("batch_size") or setting.endswith("depth")):
        return None
    report = sweep_report(ex)
    fig, (ax,), _ = _new_figure(1, 1, 4.8, 3.8)
    spe = [p.steps_per_epoch for p in report.points.values()]
    if setting.endswith("batch_size"):
        f = report.batch_fit()
        x, y = np.array(f["x_iterations"]), np.array(f["y_iterations"])
        ax.plot(x, y, "o", color="C0", ms=6, label=f"sweep values ({f['n']})", gid="points")
        used = [p.label for p in report.points.values()  # the points batch_fit kept, in its order
                if math.isfinite(p.transition(p.last_hidden)[0]) and math.isfinite(p.compression()[0])]
        for xi, yi, label in zip(x, y, used):
            ax.annotate(label.partition("=")[2], (xi, yi), xytext=(4, -9), textcoords="offset points",
                        fontsize=7, color="0.3")
        if math.isfinite(f["slope"]):
            xs = np.linspace(0, x.max() * 1.1, 50)
            ax.plot(xs, f["intercept"] + f["slope"] * xs, "-", color="C3", lw=1.5, gid="fit",
                    label=f"{f['intercept']:.4g} + {f['slope']:.3g}·x,  r = {f['r']:.3f}")
        else:
            ax.text(0.5, 0.5, "no fit: fewer than 2 sweep values with both a transition\n"
                              "and a compression start", transform=ax.transAxes, ha="center", fontsize=8,
                    color="0.35")
        ax.set_xlabel("SNR transition, last hidden layer (iterations)")
        ax.set_ylabel("compression start (iterations)")
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        what = "compression start vs SNR transition\n(Shwartz-Ziv et al. 2019, Fig. 1b)"
    else:
        f = report.depth_fit()
        same = [s for s in spe if math.isfinite(s)]
        scale = same[0] if same and max(same) - min(same) < 1e-9 else 1.0
        unit = "iterations" if scale != 1.0 else "epochs"
        k, tau = np.array(f["K"]), np.array(f["tau"]) * scale
        ax.plot(k, tau, "o", color="C0", ms=6, label=f"depths ({f['n']})", gid="points")
        if math.isfinite(f["exponent"]):
            ks = np.linspace(k.min() * 0.85, k.max() * 1.15, 50)
            alpha = f"α = {f['alpha']:.3g}" if math.isfinite(f["alpha"]) else "no α: does not fall with K"
            ax.plot(ks, f["prefactor"] * scale * ks ** f["exponent"], "-", color="C3", lw=1.5, gid="fit",
                    label=f"{f['prefactor'] * scale:.4g}·K^{f['exponent']:.3f}  ({alpha})")
        ax.set_xscale("log")
        ax.set_yscale("log")
        if len(k):
            ax.set_xticks(sorted(set(k.tolist())))
            ax.set_xlim(k.min() * 0.85, k.max() * 1.15)
        _tidy_log(ax)
        ax.set_xlabel("hidden layers K")
        ax.set_ylabel(f"converged iteration ({unit})" if unit == "iterations" else "convergence (epochs)")
        what = "convergence vs depth, fit c·K^p, p = −1/α\n(Shwartz-Ziv et al. 2019, Fig. 3)"
    ax.legend(frameon=False, loc="best", fontsize=7.5)
    name = ex.scenario().get("name") or ex.run_name or ex.path.stem
    fig.suptitle(f"{name}: sweep of {setting}\n{what}", fontsize=9.5)
    return fig


# ---------------------------------------------------------------------------------------------- all of them
FIGURES = (("info_plane", info_plane), ("dynamics", dynamics), ("gaussian_bound", gaussian_bound),
           ("training", training), ("clustering", clustering))


def figures(ex: Export) -> tuple[list[tuple[str, object]], list[str]]:
    """[(file stem, Figure)] for everything the export holds, and the stems skipped for lack of data."""
    drawn, skipped = [], []
    sweeps = ex.sweeps if ex.sweeps else [""]
    for stem, fn in FIGURES:
        missing = []
        for sweep in sweeps:
            name = f"{stem}_{_slug(sweep)}" if sweep else stem
            fig = fn(ex, sweep)
            (drawn.append((name, fig)) if fig is not None else missing.append(name))
        skipped += [stem] if len(missing) == len(sweeps) else missing  # one name when no sweep value has it
    if any(sweeps):
        fig = sweep_fit(ex)
        if fig is not None:
            drawn.append(("sweep_fit", fig))
        else:
            skipped.append("sweep_fit (batch-size and depth sweeps only)")
    return drawn, skipped


def possible_names(ex: Export) -> list[str]:
    """Every file stem `figures` may produce for this export (drawn or not)."""
    sweeps = ex.sweeps if ex.sweeps else [""]
    names = [f"{stem}_{_slug(sweep)}" if sweep else stem for stem, _ in FIGURES for sweep in sweeps]
    return names + (["sweep_fit"] if any(sweeps) else [])


def default_out_dir(csv_path: str | Path) -> Path:
    p = Path(csv_path)
    return p.with_name(f"{p.stem}_figures")


def draw_all(csv_path: str | Path, out_dir: str | Path | None = None, fmt: str = "png", overwrite: bool = False,
             skipped: list[str] | None = None) -> list[Path]:
    """Write every figure the export holds to out_dir (default `<stem>_figures` beside the CSV).

    Raises ExportError (one sentence) for a file that is not an export, or when a target exists and
    `overwrite` is false (nothing is written then). Figures without data are appended to `skipped`.
    """
    fmt = fmt.lower().lstrip(".")
    if fmt not in ("png", "pdf", "svg"):
        raise ExportError(f"--format {fmt}: not one of png, pdf, svg.")
    ex = read_export(csv_path)
    out = Path(out_dir) if out_dir is not None else default_out_dir(csv_path)
    if out.exists() or out.parent.is_dir():  # (a missing parent is created below)
        check_output(out, "-o", ExportError, folder_ok=True, inputs=(csv_path, sidecar_path(csv_path)))
    existing = [p for p in (out / f"{name}.{fmt}" for name in possible_names(ex)) if p.exists()]
    if existing and not overwrite:  # checked before drawing: any file this export could write
        raise ExportError(f"{existing[0]}{f' and {len(existing) - 1} more' if len(existing) > 1 else ''} "
                          f"already exist{'s' if len(existing) == 1 else ''}; pass --overwrite or pick another -o.")
    drawn, missing = figures(ex)
    if skipped is not None:
        skipped.extend(missing)
    return save_figures(out, [(out / f"{name}.{fmt}", fig) for name, fig in drawn], fmt)


def save_figures(out: Path, targets: list, fmt: str) -> list[Path]:
    """Create folder `out` and write each (path, figure) of `targets` under a temporary name, then rename it (never
    through a link; an interrupted plot leaves no truncated figure); the paths written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"-o {out}: cannot create that folder ({exc.strerror}); pick another.") from None
    for path, fig in targets:
        try:
            with AtomicFile(path) as f:
                fig.savefig(f, format=fmt)
        except OSError as exc:
            raise ExportError(f"-o {printable(out)}: cannot write {printable(path.name)} ({exc.strerror or exc}); "
                              f"free some space or pick another folder.") from None
    return [path for path, _ in targets]
