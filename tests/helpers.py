"""Test doubles shared by the test modules (importable as `helpers`: tests/ is on sys.path via conftest)."""
from __future__ import annotations

from ibtui.records import Record, RunInfo, Sink


class Payload:
    """Unpickling this creates a file: what a crafted data file or checkpoint could do if it were unpickled."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


class ListSink(Sink):
    """Keeps everything a run sends: its info, every record, the epochs of progress calls, close(finished)."""

    def __init__(self):
        self.records: list[Record] = []
        self.info: RunInfo | None = None
        self.epochs: list[int] = []
        self.closed: bool | None = None

    def start(self, info: RunInfo) -> None:
        self.info = info

    def emit(self, records: list[Record]) -> None:
        self.records.extend(records)

    def progress(self, p) -> None:
        self.epochs.append(p.epoch)

    def close(self, finished: bool) -> None:
        self.closed = finished

    def series(self, seed, quantity, layer="", estimator="") -> dict[int, float]:
        """epoch -> value of one seed's quantity (layer, estimator)."""
        return {r.epoch: r.value for r in self.records
                if r.seed == seed and r.quantity == quantity and r.layer == layer and r.estimator == estimator}

    def get(self, seed, quantity, estimator, layer="1", sweep=None, epoch=None) -> list[float]:
        return [r.value for r in self.records if r.seed == seed and r.quantity == quantity and r.layer == layer
                and r.estimator == estimator and (sweep is None or r.sweep == sweep)
                and (epoch is None or r.epoch == epoch)]


def two_runs(folder):
    """Two small exports to compare, unlike in shape: tanh.csv (szt_tanh: 6 layers; bin30, kde_upper, kde_lower)
    and relu.csv (szt_relu with hidden [8, 4]: 3 layers; bin30 only). Written once a folder; returns their paths."""
    from ibtui.api import run

    tiny = {"run.seeds": 2, "run.epochs": 30, "measure.snapshots": 12, "run.device": "cpu"}
    paths = folder / "tanh.csv", folder / "relu.csv"
    if not paths[0].exists():
        run("szt_tanh", set=tiny, export=paths[0])
        run("szt_relu", set={**tiny, "model.hidden": [8, 4]}, export=paths[1])
    return paths
