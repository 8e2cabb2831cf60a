"""The report as written from exports: one scale's round says so, and it regenerates exactly from its exports."""
from __future__ import annotations

import csv
import json

import numpy as np

from ibtui.reproduce import report
from ibtui.reproduce.runner import read_run
from tests.reproduce.test_claim_rules import write_export


def _cpu_only(tmp_path, monkeypatch):
    """An --out folder holding one finished cpu-scale run (szt_tanh, 5 seeds) and nothing at medium scale."""
    folder = tmp_path / "runs" / "cpu"
    folder.mkdir(parents=True)
    write_export(folder / "szt_tanh.csv", [3.0, 3.2, 2.8, 3.1, 2.9])
    (folder / "szt_tanh.time.json").write_text(json.dumps({"wall_s": 100.0, "cpu_s": 90.0, "rc": 0}))
    only = [c for c in report.claims() if c.name == "szt_tanh"]
    monkeypatch.setattr(report, "claims", lambda: only)
    import ibtui.reproduce.claims.szt_tanh as claim   # figures are drawn elsewhere; here, only the text counts

    monkeypatch.setattr(report, "module_figure", lambda *a, **k: None)
    monkeypatch.setattr(claim, "fig_plane_and_curves", lambda *a, **k: "figures/szt_tanh.png")
    return tmp_path


def test_a_cpu_only_round_says_so_and_regenerates_exactly(tmp_path, monkeypatch):
    out = _cpu_only(tmp_path, monkeypatch)
    text = report.write_report(out).read_text()
    assert report.write_report(out).read_text() == text   # the report regenerates exactly from its exports
    assert "**This report: cpu scale only.**" in text
    assert "where the scales differ" not in text        # nothing to compare: no column of dashes
    row = next(line for line in text.splitlines() if line.startswith("| [szt_tanh]"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == "**reproduced**"
    assert cells[3].startswith("not run yet (needs ~")   # the medium cell: what it would take, not a verdict
    # szt_tanh's medium cost factor (2 × 10/3) × the 90 s of CPU its cpu run took: 600 s = 0.17 h
    assert "needs ~0.17 h of CPU" in cells[3]
    assert "cpu: T5 fall: bin 3.00 [" in cells[4]      # the per-seed falls' mean, read from the export
    assert len(cells) == 6                               # claim, source, cpu, medium, key numbers, power


def test_snapshots_inside_an_epoch_keep_their_fractional_epochs(tmp_path):
    """A step-unit run (measure.snapshot_unit = "step") writes epochs like 0.25: the claims' reader keeps each
    snapshot apart (an int() of the epoch merged the first epoch's snapshots into one)."""
    path = tmp_path / "frac.csv"
    write_export(path, [1.0] * 5)
    epochs = ["0", "0.25", "0.5", "1", "2"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["run", "sweep", "seed", "epoch", "step", "layer", "quantity", "estimator", "value"])
        for i, e in enumerate(epochs):
            w.writerow(["frac", "", "mean", e, round(float(e) * 4), 1, "I(X;T)", "bin30", 10 + i])
    r = read_run(path)
    e, v = r.series("I(X;T)", "bin30", "1")
    assert e.tolist() == [0.0, 0.25, 0.5, 1.0, 2.0]
    assert v.tolist() == [10.0, 11.0, 12.0, 13.0, 14.0]
    assert np.isclose(r.steps_per_epoch(), 4.0)
