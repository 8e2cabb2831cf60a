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
        label, first = self.points[0]
        self.current = Engine(first, scenario_path, device, sweep=label)  # validates device and data now
        self.labels = tuple(lbl for lbl, _ in self.points if lbl)
        self.current.info = self.info = replace(self.current.info, sweep_points=self.labels)

    @property
    def epoch(self) -> int:
        return self.current.epoch

    def run(self, sink: Sink, controls: Controls | None = None) -> bool:
        controls = controls or Controls()
        for i, (label, sc) in enumerate(self.points):
            if i > 0:
                self.current = Engine(sc, self.scenario_path, self.device, sweep=label)
                self.current.info = replace(self.current.info, sweep_points=self.labels)
            if not self.current.run(sink, controls):
                return False
        return True
