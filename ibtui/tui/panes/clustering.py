"""The clustering table: per layer, how far its representation has collapsed into clusters.

Rows are layers, columns the clustering measures the engine emits (ibtui.measures.clustering
DEFINITIONS; unknown ones are not guessed at), at the latest snapshot: the mean over seeds, plus the
range over seeds in per-seed mode (`s`).
"""
from __future__ import annotations

import math

from rich.table import Table
from rich.text import Text
from textual.markup import escape

from ibtui import quantities as Q
from ibtui.records import epoch_text
from ibtui.tui.panes.base import TablePane, fmt, latest, seed_mode, seed_range, shown_layers
from ibtui.tui.state import StateView, ViewState

COLUMNS = Q.CLUSTERING  # every clustering quantity of the registry, in its order
HEADERS = {"cells": "cells", "H_bin": "H_bin [bits]", "homogeneity": "homog.", "spread_ratio": "spread",
           "close_pairs": "close pairs", "cos_within": "cos in", "cos_between": "cos out"}
# When the run does not measure clustering, the pane shows what it does: per layer, the drift->diffusion
# transition and phase with the latest dynamics, and the whole network's gaps and bound.
LAYER_COLUMNS = (Q.TRANSITION_EPOCH, Q.PHASE, Q.SNR, Q.WEIGHT_CHANGE)
LAYER_HEADERS = {Q.TRANSITION_EPOCH: "transition", Q.PHASE: "phase", Q.SNR: "SNR", Q.WEIGHT_CHANGE: "|W-W0|"}
NETWORK = (Q.GEN_GAP, Q.ERROR_GAP, Q.INPUT_COMPRESSION_BOUND)


def _cell(view: StateView, q: str, layer: str, vs: ViewState) -> str:
    v = latest(view, q, layer, "mean")
    if v is None:
        return "–"
    if q == Q.TRANSITION_EPOCH:
        return "waiting" if not math.isfinite(v[1]) else f"{v[1]:.0f}"
    if q == Q.PHASE:
        return "–" if not math.isfinite(v[1]) else ("diffusion" if v[1] >= 0.5 else "drift")
    cell = fmt(v[1])
    if vs.per_seed and (r := seed_range(view, q, layer)) is not None:
        cell += f" [{fmt(r[0])}–{fmt(r[1])}]"
    return cell


class ClusteringPane(TablePane):
    TITLE = "clustering"
    PAGE = 3
    HELP = ("Clustering table: per layer, at the latest snapshot, the measures of how far the representation "
            "has collapsed into clusters (Goldfeld et al. 2019): cells = occupied grid cells (N = no clustering), "
            "H_bin = entropy of the cell frequencies in bits, homog. = 1 − H(Y|C)/H(Y), spread = within/between "
            "class spread, close pairs = fraction of input pairs closer than the noise scale, cos in/out = mean "
            "cosine similarity within/between classes. Mean over seeds; s adds the range over seeds. When the run "
            "does not measure clustering, the pane shows per layer the drift->diffusion transition epoch "
            "('waiting' until declared), the phase, the latest SNR and |W-W0|, and the network's generalisation "
            "gap (nats), error gap and input-compression bound.")

    def redraw(self, view: StateView, vs: ViewState) -> None:
        cols = [q for q in COLUMNS if view.has(q)]
        layers = shown_layers(view, vs)
        if not cols:
            self.redraw_transitions(view, vs, layers)
            return
        epoch = max((e for q in cols for layer in layers if (e := (latest(view, q, layer, "mean") or (-1,))[0]) >= 0),
                    default=None)
        self.set_titles(["clustering", f"epoch {epoch_text(epoch)}",
                         "mean [min–max over seeds]" if vs.per_seed else seed_mode(view, vs)])
        table = Table(box=None, pad_edge=False, expand=True, show_edge=False)
        table.add_column(Text("layer"), justify="right", no_wrap=True)
        for q in cols:
            table.add_column(Text(HEADERS.get(q, q)), justify="right", no_wrap=True)
        for layer in layers:
            table.add_row(*(Text(c) for c in [layer, *(_cell(view, q, layer, vs) for q in cols)]))
        self.show_message(None)
        self.put(table)
        self.mark_drawn(view, vs)

    def redraw_transitions(self, view: StateView, vs: ViewState, layers: list[str]) -> None:
        cols = [q for q in LAYER_COLUMNS if view.has(q)]
        if not cols:
            self.set_titles("clustering")
            self.show_message("clustering and dynamics: " + str(view.pending_measure(False)))
            self.mark_drawn(view, vs)
            return
        epoch = max((e for layer in layers if (e := (latest(view, cols[0], layer, "mean") or (-1,))[0]) >= 0),
                    default=None)
        self.set_titles(["transitions", f"epoch {epoch_text(epoch)}", seed_mode(view, vs), "(no clustering measured)"])
        table = Table(box=None, pad_edge=False, expand=True, show_edge=False)
        table.add_column(Text("layer"), justify="right", no_wrap=True)
        for q in cols:
            table.add_column(Text(LAYER_HEADERS[q]), justify="right", no_wrap=True)
        for layer in layers:
            table.add_row(*(Text(c) for c in [layer, *(_cell(view, q, layer, vs) for q in cols)]))
        net = {"gen_gap": "gen. gap", "error_gap": "error gap", "input_compression_bound": "IC bound"}
        self.set_titles(["transitions", f"epoch {epoch_text(epoch)}", seed_mode(view, vs), "(no clustering measured)"],
                        [escape(f"{net[q]} {_cell(view, q, '', vs)}") for q in NETWORK if view.has(q)])
        self.show_message(None)
        self.put(table)
        self.mark_drawn(view, vs)
