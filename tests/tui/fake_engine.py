"""A deterministic stand-in for the training engine, for the app's tests (a test double: never imported by ibtui).

It has the real engine's interface (`info`, `epoch`, `noise_index`, `run(sinks, controls) -> bool`,
trainer.py) and its protocol: `sink.start(info)` once, an epoch-0 snapshot led by a `noise_beta`
record, then per epoch: stop check, wait while paused, apply a requested noise level (and emit
`noise_beta`), "train" (sleep `delay` seconds, so Pilot tests stay fast), emit the
snapshot's records on log-spaced epochs, and `sink.progress(Progress(...))`. Like the real engine it does not
close the sinks; the caller does. Every value is a closed-form function of (epoch, layer, seed,
estimator, noise level), shaped like the papers' curves (fitting then compression), so tests can
assert on exact numbers via `FakeEngine.value`. The stream is built from the quantity registry
(ibtui/quantities.py) with the engine's numbering: layers "1".."L" (the output last), bound pairs "0-1"..
"(L-1)-L" (pair (j-1)-j bounds layer j, T_0 = X), whole-network quantities with layer "". Like the engine,
it emits NaN where a value does not exist yet (gradients at epoch 0, the transition and the bound before
the transition), so the panes meet the same gaps.

`PYTHONPATH=. python tests/tui/fake_engine.py` runs the app on it (a demo without torch training).
"""
from __future__ import annotations

import argparse
import bisect
import math
import sys
import time

from ibtui import quantities as Q
from ibtui.controls import Controls
from ibtui.engine.schedule import snapshot_epochs
from ibtui.quantities import NOISE_BETA
from ibtui.records import Progress, Record, RunInfo, Sink

ESTIMATOR_OFFSET = {"bin30": 0.0, "kde_upper": 0.4, "kde_lower": -0.3, "sp": -0.1}
DYNAMICS = tuple(q for q in Q.of_group("dynamics") if Q.QUANTITIES[q].scope == "layer")
NETWORK_DYNAMICS = tuple(q for q in Q.of_group("dynamics") if Q.QUANTITIES[q].scope == "network")
CLUSTERING = Q.of_group("clustering")
GRADIENTS = (Q.GRAD_MEAN, Q.GRAD_STD, Q.SNR)


def _smooth(u: float) -> float:
    u = min(max(u, 0.0), 1.0)
    return u * u * (3 - 2 * u)


class FakeEngine:
    """Emits plausible, deterministic records at a slow, controllable rate (`delay` seconds an epoch)."""

    def __init__(self, epochs: int = 200, seeds: tuple[int, ...] = (0, 1, 2), hidden: tuple[int, ...] = (10, 7, 5, 4, 3),
                 n_points: int = 4096, estimators: tuple[str, ...] = ("bin30", "kde_upper"),
                 noise_levels: tuple[float, ...] = (0.0, 0.05, 0.1), delay: float = 0.01, snapshots: int = 60,
                 dynamics: bool = True, clustering: bool = True, bound: bool = True, run: str = "fake",
                 device: str = "fake (no training)"):
        self.epochs, self.seeds, self.delay = epochs, tuple(seeds), delay
        self.layers = tuple(str(i) for i in range(1, len(hidden) + 2))
        self.estimators = tuple(estimators)
        self.noise_levels = tuple(noise_levels)
        self.with_dynamics, self.with_clustering, self.with_bound = dynamics, clustering, bound
        self.snapshots = set(snapshot_epochs(epochs, snapshots, "log"))
        self.ceiling = math.log2(n_points)
        self.epoch = 0
        self.step = 0
        self.noise_index = 0
        self.noise_applied: list[tuple[int, int]] = []  # (epoch, index) each time a level was applied
        self.run_name = run
        self.info = RunInfo(
            run=run, scenario_path="(fake engine)", device=device, seeds=self.seeds, epochs=epochs,
            layers=self.layers, layer_widths=(*hidden, 2), n_points=n_points, mi_points="all",
            estimators=self.estimators,
            estimator_settings={e: {"bin30": "30 bins on [-1, 1]", "kde_upper": "KDE upper bound, σ²=1e-3",
                                    "kde_lower": "KDE lower bound, σ²=1e-3", "sp": "sample propagation"}.get(e, e)
                                for e in self.estimators},
            noise_levels=self.noise_levels, notes=("fake engine: the numbers are synthetic",),
            snapshot_epochs=tuple(sorted(self.snapshots)))

    @property
    def beta(self) -> float:
        return self.noise_levels[self.noise_index]

    # ------------------------------------------------------------------ closed-form values
    def value(self, quantity: str, epoch: int, layer: str = "", seed: int | str = "mean", estimator: str = "",
              beta: float = 0.0) -> float:
        """The number this engine emits for one record (seed "mean" = mean over the seeds)."""
        if seed == "mean":
            return sum(self.value(quantity, epoch, layer, s, estimator, beta) for s in self.seeds) / len(self.seeds)
        t = math.log1p(epoch) / math.log1p(self.epochs)
        wobble = math.sin(1.3 * seed + 0.7 * (int(layer.split("-")[0]) if layer else 0) + 3 * t)
        L = len(self.layers)
        if quantity == "I(X;T)":
            k = int(layer)
            a = max(1.5, self.ceiling * (0.9 - 0.13 * (k - 1)))
            peak, final = min(self.ceiling, a + 0.6), a * 0.55
            v = a + (peak - a) * _smooth(t / 0.45) if t < 0.45 else peak - (peak - final) * _smooth((t - 0.45) / 0.55)
            v = v / (1 + 4 * beta) + ESTIMATOR_OFFSET.get(estimator, 0.0) + 0.08 * wobble
            return min(max(v, 0.0), self.ceiling)
        if quantity == "I(T;Y)":
            k = int(layer)
            v = (0.05 + 0.9 * (1 - math.exp(-6 * t))) * (1 - 0.04 * (k - 1)) + 0.02 * wobble
            return min(max(v + 0.5 * ESTIMATOR_OFFSET.get(estimator, 0.0) / 10, 0.0), 1.0)
        if quantity == "loss_train":
            return 0.69 * math.exp(-4 * t) + 0.02 + 0.005 * wobble
        if quantity == "loss_test":
            return 0.69 * math.exp(-4 * t) + 0.02 + 0.05 * t + 0.005 * wobble
        if quantity == "acc_train":
            return 1 - 0.5 * math.exp(-5 * t) + 0.002 * wobble
        if quantity == "acc_test":
            return 1 - 0.5 * math.exp(-5 * t) - 0.03 * t + 0.002 * wobble
        k = int(layer.split("-")[-1]) if layer else 1
        if quantity in GRADIENTS and epoch == 0:
            return math.nan  # no gradients at initialisation
        if quantity == "grad_mean":
            return 0.1 * math.exp(-3 * t) / k * (1 + 0.05 * wobble)
        if quantity == "grad_std":
            return 0.02 * (1 + t) * (1 + 0.05 * wobble)
        if quantity == "snr":
            return self.value("grad_mean", epoch, layer, seed) / self.value("grad_std", epoch, layer, seed)
        if quantity == "weight_norm":
            return 1 + 2 * t + 0.01 * wobble
        if quantity == "weight_change":
            return 2 * t * (1 + 0.1 * k) + 0.01 * wobble
        if quantity == "transition_epoch":
            return float(self.transition(layer)) if epoch >= self.transition(layer) + 5 else math.nan
        if quantity == "phase":
            return 1.0 if epoch >= self.transition(layer) + 5 else 0.0
        if quantity == "gen_gap":
            return self.value("loss_test", epoch, "", seed) - self.value("loss_train", epoch, "", seed)
        if quantity == "error_gap":
            return self.value("acc_train", epoch, "", seed) - self.value("acc_test", epoch, "", seed)
        if quantity == "input_compression_bound":
            return math.sqrt((2 ** min(self.value("I(X;T)", epoch, str(L - 1), seed, self.estimators[0]), 30)
                              + math.log(2 / 0.05)) / (2 * 3276))
        if quantity == "I(X;T)_se":
            return 0.01 + 0.002 * abs(wobble)
        if quantity == "cos_within":
            return 0.2 + 0.7 * t
        if quantity == "cos_between":
            return 0.2 - 0.3 * t
        if quantity == "cells":
            return float(round(2 ** self.ceiling * (1 - 0.8 * t * k / L)))
        if quantity == "H_bin":
            return math.log2(self.value("cells", epoch, layer, seed))
        if quantity == "spread_ratio":
            return 1 - 0.8 * t + 0.01 * wobble
        if quantity == "close_pairs":
            return 0.1 * t * k / L
        if quantity == "homogeneity":
            return 0.3 + 0.6 * t
        if quantity == "gaussian_bound":  # pair (j-1)-j: defined once layer j's transition is declared
            j = int(layer.split("-")[1])
            if epoch < self.transition(str(j)) + 5:
                return math.nan
            return self.ceiling * (1 - 0.1 * j) * (1 - 0.3 * t)
        raise KeyError(quantity)

    def transition(self, layer: str) -> int:
        return max(1, round(self.epochs ** (0.35 + 0.02 * int(layer))))

    def records_at(self, epoch: int) -> list[Record]:
        """Every record of the snapshot at `epoch`, at the current noise level."""
        out: list[Record] = []
        beta = self.beta

        def add(quantity: str, layer: str = "", estimator: str = "") -> None:
            for s in (*self.seeds, "mean"):
                out.append(Record(self.run_name, s, epoch, self.step, layer, quantity, estimator,
                                  self.value(quantity, epoch, layer, s, estimator, beta)))

        for q in Q.of_group("loss"):
            add(q)
        for est in self.estimators:
            for layer in self.layers:
                add(Q.MI_XT, layer, est)
                add(Q.MI_TY, layer, est)
                if est == "sp":
                    add(Q.MI_XT_SE, layer, est)
        if self.with_dynamics:
            for layer in self.layers:
                for q in DYNAMICS:
                    add(q, layer)
            for q in NETWORK_DYNAMICS:
                add(q)
        if self.with_clustering:
            for layer in self.layers:
                for q in CLUSTERING:
                    add(q, layer)
        if self.with_bound:
            for j in range(1, len(self.layers) + 1):
                add(Q.GAUSSIAN_BOUND, f"{j - 1}-{j}")
        return out

    def _noise_record(self) -> Record:
        return Record(self.run_name, "mean", self.epoch, self.step, "", NOISE_BETA, "", float(self.beta))

    # ------------------------------------------------------------------ the run (same protocol as trainer.Engine)
    def run(self, sink: Sink, controls: Controls | None = None) -> bool:
        controls = controls or Controls()
        sink.start(self.info)
        if self.epoch == 0:
            self.noise_applied.append((0, self.noise_index))
            sink.emit([self._noise_record(), *self.records_at(0)])
        timing = {"train_s": 0.0, "trained": 0, "measure_s": 0.0, "measured": 1}
        snaps = sorted(self.snapshots)
        while self.epoch < self.epochs:
            if controls.should_stop(0.02):
                return False
            if controls.noise_index is not None and controls.noise_index % len(self.noise_levels) != self.noise_index:
                self.noise_index = controls.noise_index % len(self.noise_levels)
                self.noise_applied.append((self.epoch, self.noise_index))
                sink.emit([self._noise_record()])
            t0 = time.perf_counter()
            if self.delay > 0:
                controls.stop.wait(self.delay)  # "training": sleeps, so the UI thread stays responsive
            self.epoch += 1
            self.step += 8
            t1 = time.perf_counter()
            timing["train_s"] += t1 - t0
            timing["trained"] += 1
            if self.epoch in self.snapshots:
                sink.emit(self.records_at(self.epoch))
                timing["measure_s"] += time.perf_counter() - t1
                timing["measured"] += 1
            sink.progress(Progress(self.epoch, self.epochs, len(self.seeds), self.beta,
                                   bisect.bisect_right(snaps, self.epoch), len(snaps), **timing))
        return True


def main(argv: list[str] | None = None) -> int:
    """`python tests/tui/fake_engine.py`: the live app on the fake engine (demos, the tmux test)."""
    p = argparse.ArgumentParser(prog="python tests/tui/fake_engine.py", description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=2000)
    p.add_argument("--delay", type=float, default=0.01, help="seconds per fake epoch")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--fps", type=float, default=3.0)
    p.add_argument("--no-mouse", action="store_true")
    p.add_argument("--export", help="also write the records to this CSV (+ .meta.json)")
    a = p.parse_args(argv)
    from ibtui.tui.app import run_app

    engine = FakeEngine(epochs=a.epochs, seeds=tuple(range(a.seeds)), delay=a.delay)
    sinks = []
    if a.export:
        from ibtui.sinks.csv import CsvSink

        sinks.append(CsvSink(a.export, {"name": "fake"}, "name = \"fake\"\n", {"device": engine.info.device}))
    return run_app(engine, sinks, fps=a.fps, mouse=not a.no_mouse)


if __name__ == "__main__":  # PYTHONPATH=. python tests/tui/fake_engine.py
    sys.exit(main())
