"""Training dynamics per layer on log-scaled epochs: gradient SNR, mean, std, weight change and norm.

One quantity at a time (`d` cycles them), one curve per layer drawn with the layer's number. The
drift→diffusion transition the engine detected for a layer (record `transition_epoch`) is a vertical
line labelled `T<layer>`; a noise change is a vertical line labelled with the new β. The SNR is the
engine's per-layer definition (ibtui.measures.gradients.SNR_DEFINITION), shown on the `?` screen.
"""
from __future__ import annotations

import math

from textual.markup import escape

from ibtui.quantities import QUANTITIES, TRANSITION_EPOCH, WEIGHT_CHANGE
from ibtui.tui.panes.base import PlotPane, finite, layer_marker, run_color, run_legend, seed_mode, shown_layers, thin
from ibtui.tui.state import DYNAMICS_QUANTITIES, StateView, ViewState

LABELS = {q: QUANTITIES[q].label for q in DYNAMICS_QUANTITIES}  # short titles; definitions on the `?` screen
LOG_Y = {q for q in DYNAMICS_QUANTITIES if QUANTITIES[q].scale == "log"} - {WEIGHT_CHANGE}
TRANSITION = TRANSITION_EPOCH
POINTS = 200


class DynamicsPane(PlotPane):
    TITLE = "dynamics"
    PAGE = 2
    HELP = ("Dynamics, against the epoch on a log scale, one curve per layer drawn with the layer's number "
            "(d cycles the quantity): gradient SNR = ‖mean of the epoch's mini-batch gradients‖ / √(tr of their "
            "covariance), per layer (definition below); ‖mean gradient‖; gradient std = √tr Cov; weight change "
            "‖W(t) − W(0)‖_F; weight norm ‖W(t)‖_F. T<k> marks the drift→diffusion transition the engine "
            "detected for layer k (steepest fall of the smoothed log SNR); β=… marks a noise change. Comparing "
            "runs: colour = run, the bright run in digits on top, the others dotted (r: next).")

    def redraw(self, view: StateView, vs: ViewState) -> None:
        if view.runs:
            self.redraw_runs(view, vs)
            return
        q = vs.dynamics
        layers = shown_layers(view, vs)
        self.set_titles(["dynamics", LABELS.get(q, q), seed_mode(view, vs).replace("mean + each of", "mean of")],
                        escape("digits = layer · T = transition · d: next quantity"))
        curves = {layer: finite(view.get(q, "", layer), min_epoch=1, positive=q in LOG_Y) for layer in layers}
        if not any(xs for xs, _ in curves.values()):
            self.show_message(f"{q}: " + view.pending_measure(view.has(q)) if not view.has(q)
                              else f"{q}: no finite values yet")
            self.mark_drawn(view, vs)
            return
        self.show_message(None)
        plot = self.plots()[0]
        plt = self.begin(plot)
        ymax = max(max(ys) for xs, ys in curves.values() if ys)
        ymin = min(min(ys) for xs, ys in curves.values() if ys)
        labels = []  # (epoch, text): transitions and noise changes; lines first, so curves are drawn over them
        for layer in layers:
            tr = view.get(TRANSITION, "", layer).last()
            if tr is not None and math.isfinite(tr[1]) and tr[1] >= 1:
                plt.vline(tr[1], "gray")
                labels.append((tr[1], f"T{layer}"))
        for epoch, beta in view.noise_events:
            if epoch >= 1:
                plt.vline(epoch, 196)
                labels.append((epoch, f"β={beta:g}"))
        for layer in layers:
            xs, ys = curves[layer]
            if xs:
                pts = thin(list(zip(xs, ys)), POINTS)
                plt.plot([p[0] for p in pts], [p[1] for p in pts], marker=layer_marker(layer))
        for i, (x, label) in enumerate(sorted(labels)):
            f = 1 - (i % 4) / 5  # stagger: labels of close epochs do not overwrite each other
            y = ymin * (ymax / ymin) ** f if q in LOG_Y and ymin > 0 else ymin + (ymax - ymin) * f
            plt.text(label, x, y)
        self.finish(plt, plot, q, view, vs)

    def redraw_runs(self, view: StateView, vs: ViewState) -> None:
        """Comparing runs: the quantity per layer for every run, coloured by run; the bright one in digits, on top."""
        q = vs.dynamics
        self.set_titles(["dynamics", LABELS.get(q, q), f"{len(view.runs)} runs, mean over seeds"],
                        run_legend(view, view.sweep) + escape(" · digits = layer of the [bright] run · d: next quantity"))
        order = sorted(enumerate(view.runs), key=lambda p: p[1][0] == view.sweep)
        curves = [(i, label, {lay: finite(v.get(q, "", lay), min_epoch=1, positive=q in LOG_Y)
                              for lay in ([vs.layer] if vs.layer in v.layers() else v.layers())})
                  for i, (label, v) in order]
        if not any(xs for _, _, c in curves for xs, _ in c.values()):
            self.show_message(f"{q}: " + ("not measured in these runs" if view.snapshots else
                                          str(view.pending_measure(False))))
            self.mark_drawn(view, vs)
            return
        self.show_message(None)
        plot = self.plots()[0]
        plt = self.begin(plot)
        for i, label, c in curves:
            bright = label == view.sweep
            for layer, (xs, ys) in c.items():
                if xs:
                    pts = thin(list(zip(xs, ys)), POINTS)
                    plt.plot([p[0] for p in pts], [p[1] for p in pts], color=run_color(i, bright),
                             marker=layer_marker(layer) if bright else "braille")
        self.finish(plt, plot, q, view, vs)

    def finish(self, plt, plot, q: str, view: StateView, vs: ViewState) -> None:
        """Log epochs (and log y where the quantity is), the axis labels; then draw."""
        plt.xscale("log")
        if q in LOG_Y:
            plt.yscale("log")
        plt.xlabel("epoch (log) →")
        plt.title(f"↑ {QUANTITIES[q].axis}" + (" (log)" if q in LOG_Y else ""))
        plot.refresh()
        self.mark_drawn(view, vs)
