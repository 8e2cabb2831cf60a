"""The Gaussian bound on I(T_{k+1};T_k) per layer pair, as a table with a history sparkline.

Rows are layer pairs `k-k1` (records `gaussian_bound`), the value is the mean over seeds at the latest
snapshot, in bits; per-seed mode (`s`) adds the range over seeds. The sparkline shows the mean's
history over the snapshots (log-spaced), so compression shows up as a falling line.
"""
from __future__ import annotations

import math

from rich.table import Table

from ibtui.quantities import GAUSSIAN_BOUND
from ibtui.records import epoch_text
from rich.text import Text

from ibtui.tui.panes.base import TablePane, fmt, latest, seed_mode, seed_range, thin
from ibtui.tui.state import StateView, ViewState, _layer_sort_key

QUANTITY = GAUSSIAN_BOUND
BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int = 16) -> str:
    vals = [v for v in thin(values, width) if math.isfinite(v)]
    if not vals:
        return ""
    lo, hi = min(vals), max(vals)
    if hi - lo < 1e-12:
        return BARS[3] * len(vals)
    return "".join(BARS[min(int((v - lo) / (hi - lo) * len(BARS)), len(BARS) - 1)] for v in vals)


class BoundPane(TablePane):
    TITLE = "Gaussian bound"
    PAGE = 3
    HELP = ("Gaussian bound: per layer pair (j-1)-j (T_0 = X), the Gaussian-channel upper bound on I(T_j-1;T_j) in "
            "bits, mean over seeds at the latest snapshot; s adds the range over seeds. It exists once layer j's "
            "drift->diffusion transition is declared ('waiting for the transition' before). The sparkline is "
            "the history (log-spaced snapshots).")

    def redraw(self, view: StateView, vs: ViewState) -> None:
        pairs = sorted({k[2] for k in view.keys_of(QUANTITY)}, key=_layer_sort_key)
        if vs.layer is not None:
            pairs = [p for p in pairs if vs.layer in p.split("-")] or pairs
        if not pairs:
            self.set_titles("Gaussian bound")
            self.show_message("Gaussian bound: " + str(view.pending_measure(False)))
            self.mark_drawn(view, vs)
            return
        epoch = max((v[0] for p in pairs if (v := latest(view, QUANTITY, p, "mean")) is not None), default=None)
        self.set_titles(["Gaussian bound", f"epoch {epoch_text(epoch)}", seed_mode(view, vs)], "bits · history = sparkline")
        table = Table(box=None, pad_edge=False, expand=True, show_edge=False)
        table.add_column(Text("pair"), justify="right", no_wrap=True)
        table.add_column(Text("bound [bits]"), justify="right", no_wrap=True)
        if vs.per_seed:
            table.add_column(Text("seeds min–max"), justify="right", no_wrap=True)
        table.add_column(Text("history"), no_wrap=True)
        for p in pairs:
            v = latest(view, QUANTITY, p, "mean")
            waiting = v is None or not math.isfinite(v[1])
            row = [p, "waiting for the transition" if waiting else fmt(v[1])]
            if vs.per_seed:
                r = seed_range(view, QUANTITY, p)
                row.append(f"{fmt(r[0])}–{fmt(r[1])}" if r else "–")
            row.append(sparkline(list(view.get(QUANTITY, "", p).values)))
            table.add_row(*(Text(c) for c in row))
        self.show_message(None)
        self.put(table)
        self.mark_drawn(view, vs)
