"""What every claim module shares: the Claim and Result records, the registry, the figure helpers and the
per-layer tables. A claim module registers itself with `@claim(...)` and returns a Result per scale."""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ibtui.files import AtomicFile, atomic_write
from ibtui.reproduce.runner import Run
from ibtui.reproduce.stats import Est, ep, f2, falls, mean_ci

FIGDIR = [Path("figures")]   # set by the report writer: where this scale's figures go
SUFFIX = [""]                # appended to figure names at a scale other than cpu ("_medium")

def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 8, "axes.titlesize": 9, "legend.fontsize": 7, "figure.dpi": 100})
    return plt


def save(fig, name: str) -> str:
    name += SUFFIX[0]
    FIGDIR[0].mkdir(parents=True, exist_ok=True)
    path = FIGDIR[0] / f"{name}.png"
    with AtomicFile(path) as f:  # a temporary file, then a rename: never through a link, never half written
        fig.savefig(f, format="png", dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return f"figures/{name}.png"


def plane_axes(ax, run: Run, est: str, layers=None, sweep="", title="", ceiling=None, yest=None):
    """Mean information plane: I(X;T) vs I(T;Y) per layer, colour = epoch (log)."""
    import matplotlib.cm as cm
    import matplotlib.colors as mcolors

    layers = layers or run.layers()
    yest = yest or est
    epochs = run.series("I(X;T)", est, layers[0], sweep=sweep)[0]
    norm = mcolors.LogNorm(vmin=max(1, epochs[epochs > 0].min() if (epochs > 0).any() else 1),
                           vmax=max(2, epochs.max() if len(epochs) else 2))
    for lay in layers:
        e, x = run.series("I(X;T)", est, lay, sweep=sweep)
        _, y = run.series("I(T;Y)", yest, lay, sweep=sweep)
        if len(x) == 0 or len(y) != len(x):
            continue
        ax.plot(x, y, "-", color="0.75", lw=0.6, zorder=1)
        sc = ax.scatter(x, y, c=np.maximum(e, 1), cmap=cm.viridis, norm=norm, s=8, zorder=2)
        ax.annotate(f"T{lay}", (x[-1], y[-1]), fontsize=7, xytext=(3, -3), textcoords="offset points")
    if ceiling:
        ax.axvline(ceiling, color="r", ls=":", lw=0.8)
        ax.text(ceiling, ax.get_ylim()[0], f" log2 N = {ceiling:.2f}", color="r", fontsize=7, rotation=90,
                va="bottom", ha="right")
    ax.set_xlabel(f"I(X;T) [bits, {est}]")
    ax.set_ylabel(f"I(T;Y) [bits, {yest}]")
    ax.set_title(title)
    try:
        cb = ax.figure.colorbar(sc, ax=ax, pad=0.01)
        cb.set_label("epoch")
    except UnboundLocalError:
        pass


def curves_axes(ax, run: Run, q: str, est: str, layers, sweep="", ylabel="", logx=True, logy=False, seed="mean",
                label_fmt="T{}"):
    for lay in layers:
        e, v = run.series(q, est, lay, seed=seed, sweep=sweep)
        ok = np.isfinite(v)
        if logx:
            ok &= e > 0
        if ok.any():
            ax.plot(e[ok], v[ok], "-", lw=1, label=label_fmt.format(lay))
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel or f"{q} {est}")




@dataclass
class Result:
    measured: str           # markdown: the numbers
    verdict: str            # reproduced / partially / within noise / not reproduced
    why: str                # one paragraph
    figures: list = field(default_factory=list)
    key: str = ""           # one line for the summary table
    power: str = ""         # the intervals' half-widths beside the effects the rule must resolve


@dataclass
class Claim:
    """A claim of the papers: its runs (names in runner.RUNS), its analysis (runs → Result) and its figures."""

    name: str
    title: str              # the claim in one line
    source: str
    runs: list
    analyze: Callable
    note: str = ""          # scale / GPU / pending-feature remarks
    module_figs: list = field(default_factory=list)   # (run index, figure function of ibtui.sinks.figures, sweep)

    @property
    def short(self) -> str:
        """The source's authors and year, for the summary table."""
        s = self.source
        for tag, short in (("Shwartz-Ziv & Tishby", "Shwartz-Ziv & Tishby 2017"), ("Painsky", "Shwartz-Ziv, Painsky & Tishby 2019"),
                           ("Saxe", "Saxe et al. 2018"), ("Goldfeld", "Goldfeld et al. 2019"), ("Survey", "IB survey blog"),
                           ("ibtui", "ibtui, open finding")):
            if s.startswith(tag) or (tag == "Painsky" and tag in s.split("Fig")[0]):
                return short
        return s.split(",")[0]


CLAIMS: list[Claim] = []


def claim(name, title, source, runs, note="", figs=()):
    def deco(fn):
        CLAIMS.append(Claim(name, title, source, runs, fn, note, list(figs)))
        return fn
    return deco


def module_figure(csv_path: Path, kind: str, name: str, sweep: str = "") -> str | None:
    """A figure drawn by `ibtui plot`'s own functions (ibtui/sinks/figures.py), saved ~800 px wide, < 150 kB.

    None when this tree has no figure module yet or the export holds none of the figure's data."""
    try:
        from ibtui.sinks import figures as F
    except ImportError:
        return None
    try:
        ex = F.read_export(csv_path)
        fn = getattr(F, kind)
        fig = fn(ex) if kind == "sweep_fit" else fn(ex, sweep)
    except Exception as exc:  # a figure must not stop the report
        print(f"[reproduce] {kind} of {csv_path.name}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None
    if fig is None:
        return None
    name += SUFFIX[0]
    FIGDIR[0].mkdir(parents=True, exist_ok=True)
    path = FIGDIR[0] / f"{name}.png"
    dpi = 800 / fig.get_size_inches()[0]
    from io import BytesIO

    from PIL import Image

    def png(dpi: float) -> bytes:
        buf = BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
        return buf.getvalue()

    data = png(dpi)
    with Image.open(BytesIO(data)) as im:
        width = im.size[0]
    if abs(width - 800) > 40:  # the figure trims its margins on save: rescale to ~800 px
        dpi *= 800 / width
        data = png(dpi)
    if len(data) > 150_000:  # many faint per-seed lines: a 256-colour palette keeps it small
        with Image.open(BytesIO(data)) as im:
            buf = BytesIO()
            im.convert("RGB").quantize(colors=256).save(buf, format="png", optimize=True)
            data = buf.getvalue()
    atomic_write(path, data)  # written once, atomically: never through a link, never half written
    return f"figures/{name}.png"


# ---- helpers shared by the claims


COMPRESS = 0.5     # bits: a layer "compresses" when its mean I(X;T) falls at least this much after its peak
FLAT = 0.5         # bits: "no compression" when every hidden layer's fall after its peak stays below this


def hidden(run: Run) -> list[str]:
    return run.layers()[:-1]


def layer_table(run: Run, ests, layers=None, sweep="") -> str:
    """Markdown table: per layer and estimator, the mean curve's start → peak (epoch) → final, and both falls
    after the peak taken per seed (each seed's own peak), their mean with its 95 % t-interval over seeds."""
    layers = layers or run.layers()
    rows = ["| layer | estimator | epoch 0 | peak (epoch) | lowest after peak (epoch) | final | fall peak → lowest "
            "per seed, mean [95 % CI] | fall peak → final per seed, mean [95 % CI] |", "|---|---|---|---|---|---|---|---|"]
    for est in ests:
        for lay in layers:
            e, v = run.series("I(X;T)", est, lay, sweep=sweep)
            if len(v) == 0:
                continue
            p = falls(e, v)
            dip, drop = fall_ci(run, est, lay, "dip", sweep), fall_ci(run, est, lay, "drop", sweep)
            rows.append(f"| T{lay} | {est} | {f2(p['start'])} | {f2(p['peak'])} ({ep(p['peak_epoch'])}) | "
                        f"{f2(p['low'])} ({ep(p['low_epoch'])}) | {f2(p['final'])} | {dip.fmt()} | {drop.fmt()} |")
    return "\n".join(rows)


def seed_curves(run: Run, q: str, est: str, lay: str, sweep="") -> tuple[np.ndarray, list[np.ndarray]]:
    """The epochs and each seed's curve on them (seeds missing a snapshot are left out)."""
    e, _ = run.series(q, est, lay, sweep=sweep)
    curves = []
    for s in run.seeds(sweep):
        es, v = run.series(q, est, lay, seed=s, sweep=sweep)
        if len(es) == len(e) and len(e):
            curves.append(v)
    return e, curves


def fall_ci(run: Run, est: str, lay: str, kind: str = "drop", sweep="", q="I(X;T)") -> Est:
    """A fall after the peak taken per seed (`dip`: peak → lowest later value; `drop`: peak → final; each seed
    from its own peak), then their mean with its t-interval over seeds. Per seed, because the peak of a mean
    curve averages seeds that peak at different epochs, and a resampled mean curve's peak runs high (issue 32);
    the mean of per-seed `drop`s is therefore ≥ the mean curve's `drop`."""
    return mean_ci(seed_drops(run, est, lay, sweep, kind, q))


def seed_drops(run: Run, est, lay, sweep="", kind="drop", q="I(X;T)") -> list[float]:
    """Each seed's fall after its own peak (see `falls`)."""
    return [falls(*run.series(q, est, lay, seed=s, sweep=sweep))[kind] for s in run.seeds(sweep)]


def final(run: Run, q, est="", layer="", sweep="", seed="mean") -> float:
    e, v = run.series(q, est, layer, seed=seed, sweep=sweep)
    ok = np.isfinite(v)
    return float(v[ok][-1]) if ok.any() else math.nan


def last_epoch(run: Run) -> int:
    return int(run.sc.get("run", {}).get("epochs", 0))


def fig_plane_and_curves(run: Run, est: str, name: str, title: str, ceiling=None, sweep="", layers=None):
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 4.2), gridspec_kw={"width_ratios": [1.25, 1]})
    plane_axes(a1, run, est, layers=layers, sweep=sweep, title=f"{title}: information plane", ceiling=ceiling)
    curves_axes(a2, run, "I(X;T)", est, layers or run.layers(), sweep=sweep, ylabel=f"I(X;T) [bits, {est}]")
    a2.legend(ncol=2)
    a2.set_title("I(X;T) per layer (mean over seeds)")
    fig.tight_layout()
    return save(fig, name)


def seeds_epochs(run: Run) -> str:
    r = run.sc.get("run", {})
    s, e = r.get("seeds"), r.get("epochs")
    return f"{s} seed{'' if s == 1 else 's'} × {e} epoch{'' if e == 1 else 's'}"




def transitions(run: Run, layer: str, sweep="") -> list[float]:
    return [final(run, "transition_epoch", "", layer, sweep, seed=s) for s in run.seeds(sweep)]



def ceiling(run: Run) -> float:
    n = run.meta.get("run_info", {}).get("n_points")
    return math.log2(n) if n else math.nan



def mean_curve(run: Run, q: str, est: str, lay: str, seeds, sweep="") -> tuple[np.ndarray, np.ndarray]:
    """The mean over the given seeds (repeats allowed: a bootstrap resample) of a per-seed series."""
    e, _ = run.series(q, est, lay, sweep=sweep)
    curves = [v for v in (run.series(q, est, lay, seed=s, sweep=sweep)[1] for s in seeds) if len(v) == len(e)]
    return e, (np.mean(curves, axis=0) if curves else np.full(len(e), np.nan))


def powers(*items) -> str:
    """The power of a verdict's checks: (label, Est, effect the rule must resolve) → 'label ±h vs effect[,
    underpowered]' joined."""
    return "; ".join(f"{lab} {e.power(eff)}" for lab, e, eff in items)


def per_seed(run: Run, stat, sweep="") -> list[float]:
    """stat(seed id) → float for every seed of the run (of a sweep point)."""
    return [float(stat(s)) for s in run.seeds(sweep)]


def last_finite(v) -> float:
    v = np.asarray(v, float)
    ok = np.isfinite(v)
    return float(v[ok][-1]) if ok.any() else math.nan
