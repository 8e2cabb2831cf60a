"""Issue 34 item 6: the export reader reports a stray quote with its line instead of swallowing the rest of the file;
what ibtui writes it reads back (U+2028, a quoted newline); names reach a terminal escaped, never obeyed."""
from __future__ import annotations

import pytest

from ibtui.errors import ExportError
from ibtui.records import Record, RunInfo
from ibtui.sinks.csv import CsvSink


def _export(folder, names=("t",), epochs=40):
    path = folder / "run.csv"
    sink = CsvSink(path, {}, "")
    sink.emit([Record(n, s, e, 0, "1", "I(X;T)", "bin30", 1.0 + e) for n in names for e in range(epochs)
               for s in (0, 1, "mean")])
    sink.close(True)
    return path


@pytest.mark.parametrize("line, field", [(5, '"'), (60, '"0'), (121, '"x"y')])
def test_a_stray_quote_is_an_error_naming_its_line(tmp_path, line, field):
    from ibtui.sinks.replay import CsvReplay, check_export
    from ibtui.sinks.runs import load, read_records

    path = _export(tmp_path)
    lines = path.read_text().split("\n")
    assert len(lines) == 122  # header, 120 records, the final newline
    parts = lines[line - 1].split(",")
    parts[1] = field
    lines[line - 1] = ",".join(parts)
    path.write_text("\n".join(lines))
    for reader in (load, read_records) + ((check_export,) if line < 50 else ()):
        with pytest.raises(ExportError, match=rf"run.csv: line {line} is not valid CSV \("):
            reader(path)
    replayed = CsvReplay(path).read_new()  # a live replay skips that line alone and keeps every other record
    assert len(replayed) == 119 and all(r.run == "t" for r in replayed)


def test_names_with_line_separators_read_back(tmp_path):
    from ibtui.sinks.replay import CsvReplay, check_export
    from ibtui.sinks.runs import load, read_records

    names = ("a\u2028b", "c\u2029d", 'quo"te,\nnew line', "\x85next")
    path = _export(tmp_path, names, epochs=3)
    check_export(path)
    assert {r.run for r in read_records(path)} == set(names) and len(read_records(path)) == 36
    assert len(CsvReplay(path).read_new()) == 36
    assert sum(len(v) for v in load(path).rows.values()) == 36


def test_names_reach_the_terminal_escaped(tmp_path):
    from ibtui.sinks.progress import describe, ProgressSink
    from ibtui.tui.panes.status import RunFlags, status_lines
    from ibtui.tui.state import TuiState, ViewState
    import io
    from rich.console import Console

    info = RunInfo(run="evil\x1b]0;owned\x07\x1b[2J", scenario_path="", device="cpu", seeds=(0,), epochs=10,
                   layers=("1",), layer_widths=(4,), n_points=8, mi_points="all", estimators=("bin30",),
                   estimator_settings={"bin30": "30 bins"}, noise_levels=(0.0,), snapshot_epochs=(0, 10))
    out = io.StringIO()
    sink = ProgressSink(Console(file=out, force_terminal=False), every=1e9)
    sink.start(info)
    text = out.getvalue()
    assert "\x1b" not in text and "\x07" not in text and "evil\\x1b]0;owned\\x07\\x1b[2J" in text, text
    assert "\x1b" in describe(info)  # describe says what the run is; the sink escapes it on the way out
    state = TuiState()
    state.start(info)
    view = state.view()
    for flags in (RunFlags(), RunFlags(source="view e\x1b[31m.csv")):
        first, _ = status_lines(view, ViewState(), flags)
        assert "\x1b" not in first and "\x07" not in first and "evil\\x1b" in first, first
