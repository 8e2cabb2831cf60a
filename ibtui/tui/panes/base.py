"""What every pane shares: the redraw contract, the plot widget, epoch colours and point thinning.

A pane is a bordered container that draws only from a `StateView` and the `ViewState` (state.py);
it never computes science. `redraw(view, vs)` is called on the UI thread when the data
or the view settings changed and the pane is visible. `text` is the plain text the pane last drew,
which the tests read. Colour is never the only cue (NO_COLOR): layers are drawn with
their number as the plot marker, and colour adds the epoch.
"""
from __future__ import annotations

import io
import math
from typing import ClassVar, Sequence

from rich.color import Color
from rich.console import Console
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.markup import escape
from textual.widgets import Static
from textual_plotext import PlotextPlot

from ibtui.files import printable
from ibtui.tui.state import Series, StateView, ViewState

# Epoch colour ramp (xterm-256 indices, early → late): blue, purple, pink, orange, yellow. Readable on
# dark and light backgrounds, and each step survives the drop to 256 colours over SSH.
EPOCH_RAMP = (33, 63, 99, 135, 171, 207, 205, 203, 209, 215, 221, 227)


def epoch_color(epoch: int, total: int | None) -> int:
    """Colour of a point by its epoch, on the log scale the snapshots are spaced on."""
    total = max(total or 1, 1)
    t = math.log1p(max(epoch, 0)) / math.log1p(total)
    return EPOCH_RAMP[min(int(t * len(EPOCH_RAMP)), len(EPOCH_RAMP) - 1)]


def ramp_legend(total: int | None) -> str:
    """Textual markup: 'epoch 0 ▮▮▮…▮ total', the colour key of the epoch ramp."""
    swatches = "".join(f"[{Color.from_ansi(c).get_truecolor().hex}]▮[/]" for c in EPOCH_RAMP)
    return f"epoch 0 {swatches} {total if total else '…'}"


# Comparing runs: each run's colour, (bright, dim) xterm-256 pairs: the bright run in the first, the others in the
# second. The bright run is also drawn with layer digits, the others with braille dots (the cue without colour).
RUN_COLORS = ((39, 25), (208, 130), (41, 28), (199, 126), (226, 136), (51, 30), (196, 88), (255, 244))


def run_color(i: int, bright: bool) -> int:
    return RUN_COLORS[i % len(RUN_COLORS)][0 if bright else 1]


def run_legend(view: StateView, shown: str | None) -> str:
    """Textual markup: each compared run's name in its colour, the bright one in [brackets] (r: next)."""
    names = []
    for i, (label, _) in enumerate(view.runs):
        hexc = Color.from_ansi(run_color(i, label == shown)).get_truecolor().hex
        label = printable(label)  # a run's name from its export: escapes shown, never sent to the terminal
        names.append(f"[{hexc}]{escape(f'[{label}]' if label == shown else label)}[/]")
    return " ".join(names)


def layer_marker(layer: str) -> str:
    """One character that names the layer on the plot: its number (0-9), then letters a, b, … for 10+."""
    try:
        k = int(layer)
    except ValueError:
        return layer[:1] or "?"
    return str(k) if 0 <= k <= 9 else chr(ord("a") + (k - 10) % 26)


def fit(items: list[str], width: int, sep: str = " · ") -> str:
    """Join items, dropping the last ones (lowest priority) until the line fits `width` columns."""
    items = [i for i in items if i]
    full = sep.join(items)
    while len(items) > 1 and len(sep.join(items)) > width:
        items.pop()
    line = sep.join(items)
    if len(items) == 1 and line != full and width - len(line) - len(sep) >= 8:  # keep the start of the 2nd
        line = full[: width - 1] + "…"
    return line if len(line) <= width else line[: max(width - 1, 0)] + "…"


def thin(points: Sequence, limit: int) -> list:
    """At most `limit` points, evenly spaced, always keeping the last one (the newest snapshot)."""
    n = len(points)
    if n <= limit:
        return list(points)
    return [points[i * (n - 1) // (limit - 1)] for i in range(limit)]


def join(a: Series, b: Series) -> list[tuple[int, float, float]]:
    """(epoch, a, b) at the epochs both series have, finite values only."""
    bv = dict(zip(b.epochs, b.values))
    return [(e, x, bv[e]) for e, x in zip(a.epochs, a.values)
            if e in bv and math.isfinite(x) and math.isfinite(bv[e])]


def finite(s: Series, min_epoch: int = 0, positive: bool = False) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for e, v in zip(s.epochs, s.values):
        if e >= min_epoch and math.isfinite(v) and (v > 0 or not positive):
            xs.append(e)
            ys.append(v)
    return xs, ys


class Plot(PlotextPlot):
    """A PlotextPlot that keeps the plain text of its last render (for tests and screen dumps)."""

    last_text: str = ""

    def render(self):
        try:
            rendered = super().render()
        except Exception as exc:  # plotext can fail on degenerate data or a zero-sized area: never crash
            rendered = Text(f"(plot unavailable: {type(exc).__name__})")
        self.last_text = rendered.plain if isinstance(rendered, Text) else str(rendered)
        return rendered


class Pane(Vertical):
    """Base class: a bordered box with a one-sentence placeholder shown while it has nothing to draw."""

    TITLE: ClassVar[str] = ""
    HELP: ClassVar[str] = ""  # shown on the `?` screen
    PAGE: ClassVar[int] = 1  # which page (key 1-4) shows it in the compact layout

    def __init__(self, **kw):
        super().__init__(classes="pane", **kw)
        self.border_title = self.TITLE
        self.drawn_data = -1  # data_version last drawn
        self.drawn_view = None  # ViewState last drawn
        self.drawn_width = -1  # width last drawn (titles are fitted to it)
        self.message: str | None = "waiting for the first snapshot…"

    def compose(self) -> ComposeResult:
        yield Static(self.message or "", classes="pane-message")

    def redraw(self, view: StateView, vs: ViewState) -> None:
        raise NotImplementedError

    def set_titles(self, title: str | list[str], subtitle_markup: str | list[str] = "") -> None:
        """Border title (plain text, escaped; a list of parts is fitted to the width, the last parts
        dropped first) and subtitle (Textual markup, for the colour key; parts separated by " · " are
        dropped from the right until it fits, so neither is ever cut with "…")."""
        room = self.size.width - 6 if self.size.width > 12 else 10_000
        if not isinstance(title, str):
            title = fit(list(title), room)
        self.border_title = escape(printable(title))
        parts = [p for p in (subtitle_markup.split(" · ") if isinstance(subtitle_markup, str) else subtitle_markup) if p]
        while len(parts) > 1 and Content.from_markup(" · ".join(parts)).cell_length > room:
            parts.pop()
        self.border_subtitle = " · ".join(parts)

    def needs_redraw(self, view: StateView, vs: ViewState) -> bool:
        return (view.data_version, vs, self.size.width) != (self.drawn_data, self.drawn_view, self.drawn_width)

    def mark_drawn(self, view: StateView, vs: ViewState) -> None:
        self.drawn_data, self.drawn_view, self.drawn_width = view.data_version, vs, self.size.width

    def show_message(self, message: str | None) -> None:
        """Show `message` in place of the content (None: show the content)."""
        self.message = message
        msg = self.query_one(".pane-message", Static)
        msg.update(message or "")
        msg.display = message is not None
        for child in self.children:
            if child is not msg:
                child.display = message is None

    @property
    def text(self) -> str:
        """Plain text of what the pane shows now (title, message or content)."""
        title = self.border_title
        parts = [getattr(title, "plain", str(title or ""))]
        if self.message is not None:
            parts.append(self.message)
        else:
            parts.extend(self.content_text())
        parts.append(Content.from_markup(str(self.border_subtitle or "")).plain)
        return "\n".join(parts)

    def content_text(self) -> list[str]:
        return []


class PlotPane(Pane):
    """A pane holding one or more plotext plots."""

    PLOTS: ClassVar[tuple[str, ...]] = ("plot",)

    def compose(self) -> ComposeResult:
        yield from super().compose()
        for name in self.PLOTS:
            yield Plot(id=f"{self.id}-{name}" if self.id else None, classes=f"plot plot-{name}")

    def plots(self) -> list[Plot]:
        return list(self.query(Plot))

    def content_text(self) -> list[str]:
        return [p.last_text for p in self.plots()]

    @staticmethod
    def begin(plot: Plot):
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        return plt


def fmt(v: float) -> str:
    """A table cell: 3 significant figures; "–" for NaN (a value that does not exist yet), never raw nan."""
    if not math.isfinite(v):
        return "–" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if v != 0 and (abs(v) >= 1e4 or abs(v) < 1e-3):
        return f"{v:.3g}"
    return f"{v:.0f}" if float(v).is_integer() and abs(v) >= 10 else f"{v:.3f}"


def latest(view: StateView, quantity: str, layer: str, seed) -> tuple[int, float] | None:
    """Latest value of (quantity, layer, seed), whatever estimator label it carries ("" preferred)."""
    s = view.get(quantity, "", layer, seed)
    if not s.epochs:
        for key in view.keys_of(quantity):
            if key[2] == layer and key[3] == seed:
                s = view.series[key]
                break
    return s.last()


def seed_mode(view: StateView, vs: ViewState) -> str:
    """What a pane shows, in words: 'mean of 20 seeds', or 'mean + each of 20 seeds' in per-seed mode."""
    n = len(view.seeds())
    if n <= 1:
        return "1 seed" if n == 1 else ""
    return f"mean + each of {n} seeds" if vs.per_seed else f"mean of {n} seeds"


SEED_COLOR = 240  # faint grey: each seed's trajectory under the mean


def seed_range(view: StateView, quantity: str, layer: str) -> tuple[float, float] | None:
    vals = [v[1] for s in view.seeds() if (v := latest(view, quantity, layer, s)) is not None and math.isfinite(v[1])]
    return (min(vals), max(vals)) if vals else None


class TablePane(Pane):
    """A pane whose content is one rich Table in a Static."""

    def compose(self) -> ComposeResult:
        yield from super().compose()
        yield Static("", classes="table")

    def put(self, table: Table) -> None:
        self.query_one(".table", Static).update(table)
        self._plain = _table_text(table)

    def content_text(self) -> list[str]:
        return [getattr(self, "_plain", "")]


def _table_text(table: Table) -> str:
    console = Console(width=160, file=io.StringIO(), color_system=None)
    console.print(table)
    return console.file.getvalue()


def shown_estimator(view: StateView, vs: ViewState) -> str | None:
    ests = view.estimators()
    if vs.estimator in ests:
        return vs.estimator
    return ests[0] if ests else vs.estimator


def shown_layers(view: StateView, vs: ViewState) -> list[str]:
    layers = view.layers()
    return [vs.layer] if vs.layer in layers else layers
