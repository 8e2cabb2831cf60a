"""A scenario's sweep: one engine per value of the swept setting, run one after another.

`SweepRunner` has the Engine's interface (`info`, `epoch`, `run(sinks, controls)`), so the CLI and the
app drive a sweep and a single run the same way. Every record carries its point as `sweep`
("train.batch_size=64"); a scenario without a sweep is a sweep of one point with sweep = "".
"""
from __future__ import annotations

from dataclasses import replace

from ibtui.controls import Controls
from ibtui.records import Sink
from ibtui.engine.trainer import Engine
from ibtui.scenario import Scenario, sweep_point


def sweep_label(setting: str, value: float) -> str:
    return f"{setting}={value:g}"


class SweepRunner:
    def __init__(self, sc: Scenario, scenario_path: str = "", device: str | None = None):
        self.sc = sc
        self.scenario_path = scenario_path
        self.device = device
        if sc.sweep.setting:
            self.points = [(sweep_label(sc.sweep.setting, v), sweep_point(sc, v)) for v in sc.sweep.values]
        else:
            self.points = [("", sc)]
        self.index = 0  # the point being run
        self.labels = tuple(lbl for lbl, _ in self.points if lbl)
        self.current = self._engine(0)  # validates device and data now
        self.info = self.current.info

    def _engine(self, i: int) -> Engine:
        label, sc = self.points[i]
        engine = Engine(sc, self.scenario_path, self.device, sweep=label)
        engine.info = replace(engine.info, sweep_points=self.labels)
        return engine

    @property
    def epoch(self) -> int:
        return self.current.epoch

    @property
    def at_boundary(self) -> bool:
        return self.current.at_boundary

    def request_settle(self) -> None:
        self.current.request_settle()

    def state_dict(self) -> dict:
        """The sweep's position and its current engine's state (a checkpoint, ibtui.engine.checkpoint)."""
        return {"point": self.index, "engine": self.current.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Continue at the checkpoint's point: earlier points are done (their records are in the export)."""
        self.index = int(state["point"])
        if self.index:
            self.current = self._engine(self.index)
        self.current.load_state_dict(state["engine"])

    def run(self, sink: Sink, controls: Controls | None = None) -> bool:
        controls = controls or Controls()
        while True:
            if not self.current.run(sink, controls):
                return False
            if self.index + 1 == len(self.points):
                return True
            self.index += 1
            self.current = self._engine(self.index)
