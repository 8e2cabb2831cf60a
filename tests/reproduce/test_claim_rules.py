"""A claim's rule read from an export: met at the interval's conservative end, else "within noise"."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from ibtui.reproduce import common
from ibtui.reproduce.report import claims
from ibtui.reproduce.runner import read_run
from ibtui.scenario import load_scenario, to_toml

EPOCHS = [0, 10, 40, 100, 300, 1000]


def write_export(path, last_layer_falls: list[float]):
    """An SZT-like export: 5 hidden layers + output; only T5's I(X;T) moves: up to its peak at epoch 40, then down
    by each seed's fall. Both estimators read the same curves; the mean rows are the mean of the seeds."""
    rows = []
    curves = {}
    for s, fall in enumerate(last_layer_falls):
        for lay in range(1, 7):
            base = {1: 12, 2: 12, 3: 11, 4: 9, 5: 6, 6: 1}[lay]
            v = np.full(len(EPOCHS), float(base))
            if lay == 5:
                v = np.array([6.0, 6.5, 7.0, 7.0 - fall / 3, 7.0 - 2 * fall / 3, 7.0 - fall])
            curves[(s, lay)] = v
    for lay in range(1, 7):
        mean = np.mean([curves[(s, lay)] for s in range(len(last_layer_falls))], axis=0)
        for s in [*range(len(last_layer_falls)), "mean"]:
            v = mean if s == "mean" else curves[(s, lay)]
            for i, e in enumerate(EPOCHS):
                for est in ("bin30", "kde_upper"):
                    rows.append(["szt", "", s, e, e * 7, lay, "I(X;T)", est, v[i]])
                rows.append(["szt", "", s, e, e * 7, lay, "I(T;Y)", "bin30", 0.1 + 0.9 * i / 5])
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["run", "sweep", "seed", "epoch", "step", "layer", "quantity", "estimator", "value"])
        w.writerows(rows)
    sc = load_scenario("szt_tanh", [f"run.seeds={len(last_layer_falls)}", f"run.epochs={EPOCHS[-1]}"])
    info = {"run": "szt", "scenario_path": "szt_tanh", "device": "cpu", "seeds": list(range(len(last_layer_falls))),
            "epochs": EPOCHS[-1], "layers": ["1", "2", "3", "4", "5", "6"], "layer_widths": [10, 7, 5, 4, 3, 2],
            "n_points": 4096, "mi_points": "all", "estimators": ["bin30", "kde_upper"], "estimator_settings": {},
            "noise_levels": [0.0]}
    path.with_name(path.stem + ".meta.json").write_text(json.dumps(
        {"finished": True, "run_info": info, "scenario_toml": to_toml(sc)}))


@pytest.mark.parametrize("falls_, verdict", [
    ([3.0, 3.2, 2.8, 3.1, 2.9], "reproduced"),       # every seed falls ~3 bits: the interval is far above 0.5
    ([0.0, 0.0, 0.0, 0.0, 3.0], "within noise"),     # mean fall 0.6 ≥ 0.5, but one seed carries it
    ([0.1, 0.2, 0.1, 0.0, 0.1], "not reproduced"),   # even the high end is below 0.5
])
def test_szt_tanh_rule_reads_the_interval(tmp_path, falls_, verdict):
    path = tmp_path / "szt_tanh.csv"
    write_export(path, falls_)
    common.FIGDIR[0] = tmp_path / "figures"
    c = next(c for c in claims() if c.name == "szt_tanh")
    res = c.analyze([read_run(path)])
    assert res.verdict == verdict
    assert f"fall: bin {np.mean(falls_):.2f} [" in res.key   # the mean fall, printed beside its interval
