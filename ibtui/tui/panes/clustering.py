"""The clustering table: per layer, how far its representation has collapsed into clusters.

Rows are layers, columns the clustering measures the engine emits (ibtui.measures.clustering
DEFINITIONS; unknown ones are not guessed at), at the latest snapshot: the mean over seeds, plus the
range over seeds in per-seed mode (`s`).
"""
from __future__ import annotations

from rich.table import Table
from rich.text import Text

from ibtui.tui.panes.base import TablePane, fmt, latest, seed_range
from ibtui.tui.panes.info_plane import shown_layers
from ibtui.tui.state import StateView, ViewState

COLUMNS = ("cells", "H_bin", "homogeneity", "spread_ratio", "close_pairs", "cos_within", "cos_between")
HEADERS = {"cells": "cells", "H_bin": "H_bin [bits]", "homogeneity": "homog.", "spread_ratio": "spread",
           "close_pairs": "close pairs", "cos_within": "cos in", "cos_between": "cos out"}


class ClusteringPane(TablePane):
    TITLE = "clustering"
    PAGE = 3
    HELP = ("Clustering table: per layer, at the latest snapshot, the measures of how far the representation "
            "has collapsed into clusters (Goldfeld et al. 2019): cells = occupied grid cells (N = no clustering), "
            "H_bin = entropy of the cell frequencies in bits, homog. = 1 − H(Y|C)/H(Y), spread = within/between "
            "class spread, close pairs = fraction of input pairs closer than the noise scale, cos in/out = mean "
            "cosine similarity within/between classes. Mean over seeds; s adds the range over seeds.")

    def redraw(self, view: StateView, vs: ViewState) -> None:
        cols = [q for q in COLUMNS if view.has(q)]
        layers = shown_layers(view, vs)
        if not cols:
            self.set_titles("clustering")
            self.show_message("clustering: " + str(view.pending_measure(False)))
            self.mark_drawn(view, vs)
            return
        epoch = max((e for q in cols for layer in layers if (e := (latest(view, q, layer, "mean") or (-1,))[0]) >= 0),
                    default=None)
        self.set_titles(["clustering", f"epoch {epoch}",
                         "mean [min–max over seeds]" if vs.per_seed else "mean over seeds"])
        table = Table(box=None, pad_edge=False, expand=True, show_edge=False)
        table.add_column(Text("layer"), justify="right", no_wrap=True)
        for q in cols:
            table.add_column(Text(HEADERS.get(q, q)), justify="right", no_wrap=True)
        for layer in layers:
            row = [layer]
            for q in cols:
                v = latest(view, q, layer, "mean")
                cell = fmt(v[1]) if v is not None else "–"
                if vs.per_seed and (r := seed_range(view, q, layer)) is not None:
                    cell += f" [{fmt(r[0])}–{fmt(r[1])}]"
                row.append(cell)
            table.add_row(*(Text(c) for c in row))
        self.show_message(None)
        self.put(table)
        self.mark_drawn(view, vs)
