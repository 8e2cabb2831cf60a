"""The `?` help screen: every key (built from the app's bindings) and what each pane shows.

Built from public data only: the App's BINDINGS and each pane's HELP text (Posting's help
screen without its private `_bindings`), plus the run's estimator settings and the notes a researcher
must see (RunInfo.notes). Escape, `?` or `q` closes it.
"""
from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEY_NAMES = {"space": "space", "question_mark": "?", "ctrl+c": "ctrl+c", "escape": "esc"}


def key_label(binding: Binding) -> str:
    if binding.key_display:
        return binding.key_display
    return ", ".join(KEY_NAMES.get(k.strip(), k.strip()) for k in binding.key.split(","))


def help_text(bindings, panes, info=None, quantities=None) -> Table:
    """The help content as one rich Table: keys, the run (estimators and the start-up notes), panes, then the
    definition of every quantity (`quantities`, default the registry's)."""
    t = _Grid()
    t.add_column(justify="right", style="bold", no_wrap=True)
    t.add_column()
    t.add_row(Text("keys", style="underline"), "")
    for b in bindings:
        if b.description:
            t.add_row(key_label(b), b.description + (f": {b.tooltip}" if b.tooltip else ""))
    if info is not None:
        t.add_row("", "")
        t.add_row(Text("this run", style="underline"), "")
        t.add_row("scenario", f"{info.run} ({info.scenario_path or '–'})")
        t.add_row("seeds", f"{len(info.seeds)} ({', '.join(map(str, info.seeds[:8]))}{', …' if len(info.seeds) > 8 else ''})"
                  f" on {info.device}; {info.epochs} epochs, {len(info.snapshot_epochs) or '?'} snapshots")
        t.add_row("MI points", f"{info.mi_points}: N = {info.n_points}, ceiling log2 N")
        for est, setting in info.estimator_settings.items():
            t.add_row(est, str(setting))
        t.add_row("noise levels", ", ".join(f"{b:g}" for b in info.noise_levels) or "–")
        if info.sweep_points:
            t.add_row("sweep", ", ".join(info.sweep_points))
        for note in info.notes:
            t.add_row("note", note)
    t.add_row("", "")
    t.add_row(Text("panes", style="underline"), "")
    for title, text in panes:
        t.add_row("", Text.assemble((title, "bold"), ": ", text))
    t.add_row("", "")
    t.add_row(Text("definitions", style="underline"), "")
    if quantities is None:
        from ibtui.quantities import QUANTITIES

        quantities = QUANTITIES.values()
    for q in quantities:
        t.add_row("", Text.assemble((q.name, "bold"), (f" [{q.unit}]" if q.unit else ""), ": ", q.definition))
    from ibtui.quantities import ESTIMATORS

    t.add_row("", "")
    t.add_row(Text("estimators", style="underline"), "")
    for name, definition in ESTIMATORS.items():
        t.add_row("", Text.assemble((name, "bold"), ": ", definition))
    return t


class _Grid(Table):
    """A borderless two-column grid whose string cells are plain text (brackets stay brackets)."""

    def __init__(self):
        super().__init__(show_header=False, show_edge=False, box=None, padding=(0, 2), pad_edge=False)

    def add_row(self, *cells, **kw) -> None:
        super().add_row(*(Text(c) if isinstance(c, str) else c for c in cells), **kw)


class HelpScreen(ModalScreen):
    """The whole screen (a cut modal hid that it scrolls); its border says how to scroll and close."""

    BINDINGS = [Binding("escape,question_mark,q,f1", "close", "Close", show=False),
                Binding("space,j", "scroll(1)", show=False), Binding("k", "scroll(-1)", show=False)]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 100%; height: 100%; border: round $accent; padding: 0 1;
                                  background: $surface; }
    """

    def __init__(self, content: Table):
        super().__init__()
        self.content = content

    def compose(self) -> ComposeResult:
        box = VerticalScroll(Static(self.content, id="help-text"))
        box.border_title = "ibtui help"
        box.border_subtitle = "↑↓ PgUp PgDn space: scroll · esc: close"
        yield box

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()

    def action_scroll(self, pages: int) -> None:
        box = self.query_one(VerticalScroll)
        box.scroll_to(y=box.scroll_y + pages * max(box.size.height - 2, 1), animate=False)

    def action_close(self) -> None:
        self.dismiss()
