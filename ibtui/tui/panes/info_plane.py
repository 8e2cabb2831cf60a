"""The information plane: I(X;T) (x) against I(T;Y) (y), in bits, one trajectory per layer.

Each layer is drawn with its number as the marker (the cue that survives NO_COLOR) and each point is
coloured by its epoch. The default shows the mean over seeds; `s` adds every seed's points as a
braille cloud. The vertical line is the I(X;T) ceiling log2 N (N = number of points MI is measured
on). `*` marks the point where the engine applied a new noise level. The title names the estimator
shown and its settings (DESIGN.md, "Conventions").
"""
from __future__ import annotations

import math

from ibtui.quantities import MI_TY, MI_XT
from ibtui.tui.panes.base import PlotPane, epoch_color, join, layer_marker, ramp_legend, thin
from ibtui.tui.state import StateView, ViewState

MEAN_POINTS = 200  # per layer: more than a plot has columns
CLOUD_POINTS = 1200  # all seeds and layers together


def shown_estimator(view: StateView, vs: ViewState) -> str | None:
    ests = view.estimators()
    if vs.estimator in ests:
        return vs.estimator
    return ests[0] if ests else vs.estimator


def shown_layers(view: StateView, vs: ViewState) -> list[str]:
    layers = view.layers()
    return [vs.layer] if vs.layer in layers else layers


def estimator_title(view: StateView, est: str | None) -> str:
    if est is None:
        return "no MI estimator"
    setting = view.info.estimator_settings.get(est, "") if view.info is not None else ""
    return f"{est}: {setting}" if setting else est


class InfoPlanePane(PlotPane):
    TITLE = "information plane"
    PAGE = 1
    HELP = ("Information plane: x = I(X;T), y = I(T;Y), both in bits, for the estimator named in the title "
            "(e cycles the estimators the run computes). One trajectory per layer, drawn with the layer's "
            "number; colour = epoch (log scale, blue early → yellow late). Default: mean over seeds; s adds "
            "every seed's points (braille cloud). The vertical line is the ceiling log2 N of I(X;T) "
            "(N = points MI is measured on). * marks where the engine applied a new noise level (n). "
            "l shows one layer at a time.")

    def redraw(self, view: StateView, vs: ViewState) -> None:
        est = shown_estimator(view, vs)
        layers = shown_layers(view, vs)
        info = view.info
        total = view.total
        where = f"{info.mi_points}, N={info.n_points}" if info is not None and info.n_points else "N unknown"
        seeds = len(view.seeds())
        mode = f"mean of {seeds} seeds" + (" + each seed" if vs.per_seed else "")
        self.set_titles(["information plane", estimator_title(view, est), where, mode],
                        f"digits = layer · {ramp_legend(total)} · * noise change"
                        + (" · | log2 N" if info is not None and info.n_points else ""))
        plane = {layer: join(view.get(MI_XT, est or "", layer), view.get(MI_TY, est or "", layer))
                 for layer in layers}
        if not any(plane.values()):
            self.show_message(view.pending_measure(False))
            self.mark_drawn(view, vs)
            return
        self.show_message(None)
        plot = self.plots()[0]
        plt = self.begin(plot)
        ceiling = math.log2(info.n_points) if info is not None and info.n_points > 1 else None
        xmax, ymax = (ceiling or 0.0), 1.0
        if ceiling is not None:
            plt.vline(ceiling, "gray")  # first, so that points at the ceiling are drawn over it
        if vs.per_seed:
            seed_ids = view.seeds()
            per = max(5, CLOUD_POINTS // max(1, len(seed_ids) * len(layers)))
            for layer in layers:
                for s in seed_ids:
                    pts = thin(join(view.get(MI_XT, est or "", layer, s), view.get(MI_TY, est or "", layer, s)), per)
                    if pts:
                        plt.scatter([p[1] for p in pts], [p[2] for p in pts], marker="braille",
                                    color=[epoch_color(p[0], total) for p in pts])
                        xmax, ymax = max(xmax, max(p[1] for p in pts)), max(ymax, max(p[2] for p in pts))
        for layer in layers:
            pts = thin(plane[layer], MEAN_POINTS)
            if not pts:
                continue
            plt.scatter([p[1] for p in pts], [p[2] for p in pts], marker=layer_marker(layer),
                        color=[epoch_color(p[0], total) for p in pts])
            xmax, ymax = max(xmax, max(p[1] for p in pts)), max(ymax, max(p[2] for p in pts))
            for epoch, beta in view.noise_events:  # the first snapshot at or after each change
                if epoch == 0:
                    continue
                after = [p for p in plane[layer] if p[0] >= epoch]
                if after:
                    plt.scatter([after[0][1]], [after[0][2]], marker="*", color=196)
        plt.xlim(0, xmax * 1.04 + 1e-9)
        plt.ylim(0, ymax * 1.05)
        plt.xlabel("I(X;T) [bits]")
        plt.ylabel("I(T;Y) [bits]")
        plot.refresh()
        self.mark_drawn(view, vs)
