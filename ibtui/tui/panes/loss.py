"""Loss and accuracy, train and test, mean over seeds, against the epoch (log scale).

Two plots side by side (plotext's second y axis misplaces log-x series, so loss and accuracy get
their own). Train is drawn with `•`, test with `x`, so the pair is told apart without colour.
"""
from __future__ import annotations

from ibtui.quantities import ACC_TEST, ACC_TRAIN, LOSS_TEST, LOSS_TRAIN
from ibtui.tui.panes.base import PlotPane, finite, thin
from ibtui.tui.state import StateView, ViewState

POINTS = 200


class LossPane(PlotPane):
    TITLE = "loss and accuracy"
    PAGE = 4
    PLOTS = ("loss", "acc")
    HELP = ("Loss and accuracy: mean over seeds of the training loss (cross-entropy) and accuracy on the "
            "train (•) and test (x) points, against the epoch on a log scale (epoch 0 = initialisation, "
            "drawn at 1). A red line marks a noise change.")

    def redraw(self, view: StateView, vs: ViewState) -> None:
        series = {q: finite(view.get(q)) for q in (LOSS_TRAIN, LOSS_TEST, ACC_TRAIN, ACC_TEST)}
        self.set_titles("loss and accuracy · mean over seeds", "• train · x test")
        if not any(xs for xs, _ in series.values()):
            self.show_message("loss: " + str(view.pending_measure(False)))
            self.mark_drawn(view, vs)
            return
        self.show_message(None)
        for plot, (qa, qb, name) in zip(self.plots(), ((LOSS_TRAIN, LOSS_TEST, "loss"), (ACC_TRAIN, ACC_TEST, "accuracy"))):
            plt = self.begin(plot)
            for epoch, _beta in view.noise_events:  # first, so the curves are drawn over the line
                if epoch >= 1:
                    plt.vline(epoch, 196)
            for q, marker in ((qa, "•"), (qb, "x")):
                xs, ys = series[q]
                if xs:
                    pts = thin(list(zip(xs, ys)), POINTS)
                    plt.plot([max(p[0], 1) for p in pts], [p[1] for p in pts], marker=marker)
            plt.xscale("log")
            plt.title(name)
            plot.refresh()
        self.mark_drawn(view, vs)
