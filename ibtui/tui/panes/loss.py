"""Loss and accuracy, train and test, mean over seeds, against the epoch (log scale).

Two plots side by side (plotext's second y axis misplaces log-x series, so loss and accuracy get
their own). Train is drawn with `•`, test with `x`, so the pair is told apart without colour.
"""
from __future__ import annotations

from textual.markup import escape

from ibtui.quantities import ACC_TEST, ACC_TRAIN, LOSS_TEST, LOSS_TRAIN, QUANTITIES
from ibtui.tui.panes.base import SEED_COLOR, PlotPane, finite, run_color, run_legend, seed_mode, thin
from ibtui.tui.state import StateView, ViewState

POINTS = 200


class LossPane(PlotPane):
    TITLE = "loss and accuracy"
    PAGE = 4
    PLOTS = ("loss", "acc")
    HELP = ("Loss and accuracy: mean over seeds (s adds each seed, faint) of the loss (cross-entropy, nats) and accuracy on the "
            "train (•) and test (x) points, against the epoch on a log scale (epoch 0 = initialisation, "
            "drawn at 1). A red line marks a noise change. Comparing runs: colour = run, the bright run with • and x, "
            "the others dotted (r: next).")

    def redraw(self, view: StateView, vs: ViewState) -> None:
        if view.runs:
            self.redraw_runs(view, vs)
            return
        series = {q: finite(view.get(q)) for q in (LOSS_TRAIN, LOSS_TEST, ACC_TRAIN, ACC_TEST)}
        self.set_titles(["loss and accuracy", seed_mode(view, vs)], "• train · x test")
        if not self.has_data(any(xs for xs, _ in series.values()), view, vs):
            return
        for plot, (qa, qb) in zip(self.plots(), ((LOSS_TRAIN, LOSS_TEST), (ACC_TRAIN, ACC_TEST))):
            plt = self.begin(plot)
            for epoch, _beta in view.noise_events:  # first, so the curves are drawn over the line
                if epoch >= 1:
                    plt.vline(epoch, 196)
            if vs.per_seed:  # each seed, faint, under the means
                per = max(10, POINTS // max(len(view.seeds()), 1))
                for s in view.seeds():
                    for q in (qa, qb):
                        pts = thin(list(zip(*finite(view.get(q, "", "", s)))), per)
                        if pts:
                            plt.plot([max(p[0], 1) for p in pts], [p[1] for p in pts], marker="braille",
                                     color=SEED_COLOR)
            for q, marker in ((qa, "•"), (qb, "x")):
                xs, ys = series[q]
                if xs:
                    pts = thin(list(zip(xs, ys)), POINTS)
                    plt.plot([max(p[0], 1) for p in pts], [p[1] for p in pts], marker=marker)
            self.finish(plt, plot, qa)
        self.mark_drawn(view, vs)

    def redraw_runs(self, view: StateView, vs: ViewState) -> None:
        """Comparing runs: every run's mean curves, coloured by run; the bright one with markers, on top."""
        self.set_titles(["loss and accuracy", f"{len(view.runs)} runs, mean over seeds"],
                        run_legend(view, view.sweep) + escape(" · [bright]: • train x test · r: next"))
        order = sorted(enumerate(view.runs), key=lambda p: p[1][0] == view.sweep)
        present = any(finite(v.get(q))[0] for _, (_, v) in order for q in (LOSS_TRAIN, ACC_TRAIN))
        if not self.has_data(present, view, vs):
            return
        for plot, (qa, qb) in zip(self.plots(), ((LOSS_TRAIN, LOSS_TEST), (ACC_TRAIN, ACC_TEST))):
            plt = self.begin(plot)
            for i, (label, v) in order:
                bright = label == view.sweep
                for q, marker in ((qa, "•"), (qb, "x")):
                    xs, ys = finite(v.get(q))
                    if xs:
                        pts = thin(list(zip(xs, ys)), POINTS)
                        plt.plot([max(p[0], 1) for p in pts], [p[1] for p in pts], color=run_color(i, bright),
                                 marker=marker if bright else "braille")
            self.finish(plt, plot, qa)
        self.mark_drawn(view, vs)

    def has_data(self, present: bool, view: StateView, vs: ViewState) -> bool:
        """Show the plots, or the sentence saying why there is nothing yet."""
        if not present:
            self.show_message("loss: " + str(view.pending_measure(False)))
            self.mark_drawn(view, vs)
            return False
        self.show_message(None)
        return True

    @staticmethod
    def finish(plt, plot, q: str) -> None:
        """Log epochs, the quantity's name and unit; then draw."""
        plt.xscale("log")
        quantity = QUANTITIES[q]
        plt.title(f"↑ {quantity.label.split()[-1]}" + (f" [{quantity.unit}]" if quantity.unit else ""))
        plt.xlabel("epoch (log) →")
        plot.refresh()
