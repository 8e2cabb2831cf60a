"""The information plane: I(X;T) (x) against I(T;Y) (y), in bits, one trajectory per layer.

Each layer is drawn with its number as the marker (the cue that survives NO_COLOR) and each point is
coloured by its epoch. The default shows the mean over seeds; `s` adds every seed's points as a
braille cloud. The vertical line is the I(X;T) ceiling log2 N (N = number of points MI is measured
on). `*` marks the point where the engine applied a new noise level. The title names the estimator
shown and its settings.
"""
from __future__ import annotations

import math

from textual.markup import escape

from ibtui.quantities import MI_TY, MI_XT, QUANTITIES
from ibtui.tui.panes.base import (SEED_COLOR, PlotPane, epoch_color, join, layer_marker, ramp_legend, run_color,
                                  run_legend, seed_mode, shown_estimator, shown_layers, thin)
from ibtui.tui.state import StateView, ViewState

MEAN_POINTS = 200  # per layer: more than a plot has columns
CLOUD_POINTS = 1200  # all seeds and layers together


def estimator_title(view: StateView, est: str | None) -> str:
    """The estimator and, when short, its settings ("bin30: 30 bins on [-1, 1]"); the rest is on the ? screen."""
    if est is None:
        return "no MI estimator"
    setting = view.info.estimator_settings.get(est, "") if view.info is not None else ""
    return f"{est}: {setting}" if setting and len(setting) <= 24 else est


class InfoPlanePane(PlotPane):
    TITLE = "information plane"
    PAGE = 1
    HELP = ("Information plane: x = I(X;T), y = I(T;Y), both in bits, for the estimator named in the title "
            "(e cycles the estimators the run computes). One trajectory per layer, drawn with the layer's "
            "number; colour = epoch (log scale, blue early → yellow late). Default: mean over seeds; s adds "
            "each seed's trajectory, faint. The vertical line is the ceiling log2 N of I(X;T) "
            "(N = points MI is measured on). * marks where the engine applied a new noise level (n). "
            "l shows one layer at a time. Comparing runs (ibtui view a.csv b.csv): colour = run (named in the "
            "subtitle); the bright run, in [brackets], is drawn with layer digits on top, the others with dots; "
            "r makes the next run bright.")

    def redraw(self, view: StateView, vs: ViewState) -> None:
        if view.runs:
            self.redraw_runs(view, vs)
            return
        est = shown_estimator(view, vs)
        layers = shown_layers(view, vs)
        info = view.info
        total = view.total
        where = f"N={info.n_points}" if info is not None and info.n_points else ""
        plane = {layer: join(view.get(MI_XT, est or "", layer), view.get(MI_TY, est or "", layer))
                 for layer in layers}
        if not any(plane.values()):
            self.set_titles(["information plane", est or "", seed_mode(view, vs), where])
            self.show_message(view.pending_measure(False))
            self.mark_drawn(view, vs)
            return
        self.show_message(None)
        plot = self.plots()[0]
        plt = self.begin(plot)
        n_ceiling = info.ceiling_points(est or "") if info is not None else 0
        ceiling = math.log2(n_ceiling) if n_ceiling > 1 else None
        xmax, ymax = (ceiling or 0.0), 1.0
        for layer in layers:
            if plane[layer]:
                xmax = max(xmax, max(p[1] for p in plane[layer]))
                ymax = max(ymax, max(p[2] for p in plane[layer]))
        if ceiling is not None:
            plt.vline(ceiling, "gray")  # first, so that points at the ceiling are drawn over it
        if vs.per_seed:  # each seed's trajectory, faint, under the means
            seed_ids = view.seeds()
            per = max(8, CLOUD_POINTS // max(1, len(seed_ids) * len(layers)))
            for layer in layers:
                for s in seed_ids:
                    pts = thin(join(view.get(MI_XT, est or "", layer, s), view.get(MI_TY, est or "", layer, s)), per)
                    if pts:
                        plt.plot([p[1] for p in pts], [p[2] for p in pts], marker="braille", color=SEED_COLOR)
                        xmax, ymax = max(xmax, max(p[1] for p in pts)), max(ymax, max(p[2] for p in pts))
        xmax, ymax = xmax * 1.04 + 1e-9, ymax * 1.05
        # Layers are drawn last to first, so layer 1 is on top; a layer whose every point lies in a cell a
        # later-drawn layer also fills is hidden: the subtitle names it (e.g. "2 under 1").
        w, h = max(plot.size.width - 8, 10), max(plot.size.height - 4, 5)
        cells = {layer: {(round(p[1] / xmax * w), round(p[2] / ymax * h)) for p in thin(plane[layer], MEAN_POINTS)}
                 for layer in layers}
        hidden = []
        for i, layer in enumerate(layers):
            above = set().union(*(cells[other] for other in layers[:i]))
            if cells[layer] and cells[layer] <= above:
                under = [o for o in layers[:i] if cells[layer] & cells[o]]
                hidden.append(f"{layer_marker(layer)} under {','.join(layer_marker(o) for o in under)}")
        for layer in reversed(layers):
            pts = thin(plane[layer], MEAN_POINTS)
            if not pts:
                continue
            plt.scatter([p[1] for p in pts], [p[2] for p in pts], marker=layer_marker(layer),
                        color=[epoch_color(p[0], total) for p in pts])
            for epoch, beta in view.noise_events:  # the first snapshot at or after each change
                if epoch == 0:
                    continue
                after = [p for p in plane[layer] if p[0] >= epoch]
                if after:
                    plt.scatter([after[0][1]], [after[0][2]], marker="*", color=196)
        plt.xlim(0, xmax)
        plt.ylim(0, ymax)
        plt.xlabel(f"{QUANTITIES[MI_XT].axis} →")
        plt.title(f"↑ {QUANTITIES[MI_TY].axis}")  # plotext puts a y label at the bottom left: the title is by the axis
        plot.refresh()
        self.set_titles(["information plane", estimator_title(view, est), seed_mode(view, vs), where],
                        "digits = layer" + (f" ({'; '.join(hidden)})" if hidden else "")
                        + f" · {ramp_legend(total)}" + (" · * noise change" if len(view.noise_events) > 1 else "")
                        + (" · | log2 N" if ceiling is not None else ""))
        self.mark_drawn(view, vs)

    def redraw_runs(self, view: StateView, vs: ViewState) -> None:
        """Comparing runs: every run's layers on one plane, coloured by run; the bright run on top, in digits."""
        est = shown_estimator(view, vs)
        bright = view.sweep
        planes = []  # (index, label, {layer: points}); the bright run last, so it is drawn on top
        missing = []
        for i, (label, v) in enumerate(view.runs):
            layers = [vs.layer] if vs.layer in v.layers() else ([] if vs.layer is not None else v.layers())
            plane = {lay: thin(join(v.get(MI_XT, est or "", lay), v.get(MI_TY, est or "", lay)), MEAN_POINTS)
                     for lay in layers}
            if not any(plane.values()):
                missing.append(label)
            planes.append((i, label, plane))
        planes.sort(key=lambda p: p[1] == bright)
        title = ["information plane", estimator_title(view, est), f"{len(view.runs)} runs, mean over seeds"]
        legend = run_legend(view, bright) + (f" · no {est} in {escape(', '.join(missing))}" if missing else "")
        legend += escape(" · digits = layer of the [bright] run · r: next")
        if len(missing) == len(view.runs):
            self.set_titles(title, legend)
            self.show_message(f"no run has {est} records" if view.snapshots else view.pending_measure(False))
            self.mark_drawn(view, vs)
            return
        self.show_message(None)
        plot = self.plots()[0]
        plt = self.begin(plot)
        pts_all = [p for _, _, plane in planes for pts in plane.values() for p in pts]
        ceilings = [math.log2(v.info.n_points) for _, v in view.runs if v.info is not None and v.info.n_points > 1]
        xmax = max([p[1] for p in pts_all] + ceilings + [0.0]) * 1.04 + 1e-9
        ymax = max([p[2] for p in pts_all] + [1.0]) * 1.05
        for c in sorted(set(ceilings)):
            plt.vline(c, "gray")
        for i, label, plane in planes:
            on_top = label == bright
            for layer in reversed(list(plane)):
                pts = plane[layer]
                if pts and on_top:
                    plt.scatter([p[1] for p in pts], [p[2] for p in pts], color=run_color(i, True),
                                marker=layer_marker(layer))
                elif pts:
                    plt.plot([p[1] for p in pts], [p[2] for p in pts], color=run_color(i, False), marker="braille")
        plt.xlim(0, xmax)
        plt.ylim(0, ymax)
        plt.xlabel(f"{QUANTITIES[MI_XT].axis} →")
        plt.title(f"↑ {QUANTITIES[MI_TY].axis}")
        plot.refresh()
        self.set_titles(title, legend + (" · | log2 N" if ceilings else ""))
        self.mark_drawn(view, vs)
