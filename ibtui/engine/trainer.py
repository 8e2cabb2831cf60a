"""The engine: trains every seed at once and emits records at snapshot epochs.

It owns the data, the batched model, the optimiser and the measurement schedule, and knows nothing
about Textual. `run(sinks, controls)` reads Controls only at epoch boundaries. In the training loop
nothing is copied to the host: losses and measures stay on the device until a snapshot is emitted.
"""
from __future__ import annotations

import bisect
import math
import time
from typing import Iterable

import torch

from ibtui.data.dataset import Dataset, load_dataset
from ibtui import records as R
from ibtui import quantities as Q
from ibtui.engine import rng
from ibtui.controls import Controls
from ibtui.engine.cuda_graph import EpochGraphs, graphs_possible
from ibtui.engine.device import describe, resolve_device
from ibtui.engine.schedule import snapshot_epochs
from ibtui.engine.paths import build_path
from ibtui.engine.probes import Snapshot, build_probes
from ibtui.engine.regularizers import build_regularizers
from ibtui.engine.snapshot import Values, mi_points
from ibtui.models.mlp import BatchedMLP
from ibtui.scenario import Scenario


def hidden_widths(sc: Scenario) -> list[int]:
    """The hidden widths in use: model.hidden, cut to model.depth layers when depth > 0."""
    return sc.model.hidden[:sc.model.depth] if sc.model.depth else list(sc.model.hidden)


def build_model(sc: Scenario, seeds: list[int], data: Dataset) -> torch.nn.Module:
    """The scenario's network for all seeds at once."""
    if sc.model.kind != "mlp":
        from ibtui.engine.module_path import build_module  # convolutional models

        return build_module(sc, seeds, data)
    d_in = data.x[0].numel()
    sizes = [d_in, *hidden_widths(sc), data.n_classes]
    model = BatchedMLP(seeds, sizes, sc.model.activation, sc.model.init)
    if sc.model.init_weight != 0.0 or sc.model.init_bias != 0.0:
        with torch.no_grad():
            for w, b in zip(model.weights, model.biases):
                if sc.model.init_weight != 0.0:
                    w.fill_(sc.model.init_weight)
                b.fill_(sc.model.init_bias)
    if sc.model.fixed_readout:
        with torch.no_grad():
            w, b = model.weights[-1], model.biases[-1]
            width = w.shape[1]
            w[:, :, 0] = -1.0 / width
            w[:, :, 1] = 1.0 / width
            b.zero_()
        w.requires_grad_(False)
        b.requires_grad_(False)
    return model


def build_optimizer(sc: Scenario, params: Iterable[torch.nn.Parameter], capturable: bool = False
                    ) -> torch.optim.Optimizer:
    """Adam or SGD over the batched parameters: both act elementwise, so every seed is optimised on its own.

    The fused implementations (one kernel for all parameters) are used; they compute the same update.
    `capturable` keeps Adam's step count on the device, as a captured CUDA graph needs.
    """
    t = sc.train
    if t.optimizer == "adam":
        return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay, fused=True, capturable=capturable)
    return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay, fused=True)


class Engine:
    """All seeds of one scenario, trained together. Construct, then `run(sinks, controls)`."""

    def __init__(self, sc: Scenario, scenario_path: str = "", device: str | None = None, sweep: str = ""):
        self.sc = sc
        self.sweep = sweep  # "setting=value" when this engine runs one point of a sweep
        self.device = resolve_device(device or sc.run.device)
        self.seeds = list(range(sc.run.first_seed, sc.run.first_seed + sc.run.seeds))
        self.seed_tensor = torch.tensor(self.seeds, dtype=torch.int64, device=self.device)
        self.data = load_dataset(sc, self.seeds, self.device)
        self.model = build_model(sc, self.seeds, self.data).to(self.device)
        self.snapshots = set(snapshot_epochs(sc.run.epochs, sc.measure.snapshots, sc.measure.schedule))
        self.train_idx = self.data.train_indices()
        self.mi_idx = mi_points(sc.data.mi_points, self.data.train, self.data.test, sc.data.mi_subset)
        self.path = build_path(self)
        self.steps_per_epoch = -(-self.train_idx.shape[1] // sc.train.batch_size)
        use_graphs = sc.run.cuda_graph and graphs_possible(self)
        self.optimizer = build_optimizer(sc, [p for p in self.model.parameters() if p.requires_grad],
                                         capturable=use_graphs)
        self.noise_index = sc.model.noise_start
        self.epoch = 0
        self.step = 0
        self.alive = torch.ones(len(self.seeds), dtype=torch.bool)
        self.regularizers = build_regularizers(self)
        self.probes = build_probes(self)
        self._step_hooks = [*self.regularizers, *(p for p in self.probes if p.watches_steps)]
        self.graphs = EpochGraphs(self) if use_graphs else None
        self.info = self._info(scenario_path)

    # ------------------------------------------------------------------ description
    @property
    def beta(self) -> float:
        return self.sc.model.noise_levels[self.noise_index]

    def _info(self, scenario_path: str) -> R.RunInfo:
        sc = self.sc
        n_points = self.data.x.shape[0] if self.mi_idx is None else self.mi_idx.shape[1]
        settings = {label: desc for p in self.probes for label, desc in p.estimators.items()}
        estimators = list(settings)
        notes = list(self.data.notes) + [n for p in self.probes for n in p.notes]
        if self.data.distinct_inputs and "binning" in sc.measure.estimators:
            notes.append("binning: the measured inputs are distinct and the measured map is deterministic, "
                         "so H(T|X) = 0 and I(X;T) = H(T)"
                         + (" (noisy network: binning measures the noiseless representations)"
                            if max(sc.model.noise_levels) > 0 else ""))
        widths = [*getattr(self.model, "layer_widths", hidden_widths(sc)), self.data.n_classes]
        return R.RunInfo(
            run=sc.name, scenario_path=scenario_path, device=describe(self.device), seeds=tuple(self.seeds),
            epochs=sc.run.epochs, layers=tuple(str(i) for i in range(1, len(widths) + 1)),
            layer_widths=tuple(widths), n_points=int(n_points), mi_points=sc.data.mi_points,
            estimators=tuple(estimators), estimator_settings=settings,
            noise_levels=tuple(sc.model.noise_levels), notes=tuple(notes), sweep=self.sweep,
            snapshot_epochs=tuple(sorted(self.snapshots)))

    # ------------------------------------------------------------------ training
    def _noise_fn(self, step: rng.Counter):
        seeds = self.seed_tensor

        def noise(layer: int, like: torch.Tensor) -> torch.Tensor:
            return rng.normal(seeds, (rng.STREAM_NOISE, step, layer), tuple(like.shape[1:])).to(like.dtype)

        return noise

    def train_epoch(self) -> None:
        """One pass over each seed's training points in its own random order."""
        hooks = self.start_epoch()
        if self.graphs is not None and self.graphs.covers(hooks):
            self.graphs.run_epoch(self.beta, hooks)
        else:
            self.run_steps(self.beta, hooks)
        self.epoch += 1
        for probe in self.probes:
            probe.after_epoch(self)

    def start_epoch(self) -> list:
        """Shuffle each seed's training points for this epoch; returns the step hooks that watch it."""
        n_train = self.train_idx.shape[1]
        perm = rng.permutations(self.seed_tensor, (rng.STREAM_BATCH, self.epoch), n_train)
        self.path.start_epoch(self.train_idx.gather(1, perm))
        return [h for h in self._step_hooks if h.watches_epoch(self, self.epoch)]

    def run_steps(self, beta: float, hooks: list, step_counter: torch.Tensor | None = None,
                  limit: int | None = None) -> None:
        """The epoch's optimiser steps (the first `limit` only, if given) over the batches of `start_epoch`.

        The noise of step i is drawn at counter `self.step` (or `step_counter + i`, a device tensor, when
        the steps are being captured into a CUDA graph: the same numbers).
        """
        n_train, bs = self.train_idx.shape[1], self.sc.train.batch_size
        for i, start in enumerate(list(range(0, n_train, bs))[:limit]):
            step = self.step if step_counter is None else step_counter + i
            self.path.grads(start, min(start + bs, n_train), beta, self._noise_fn(step) if beta > 0 else None)
            for hook in hooks:  # regularisers add to the gradients; probes read them
                hook.after_step(self)
            self.optimizer.step()
            self.step += 1

    # ------------------------------------------------------------------ measurement
    @torch.no_grad()
    def measure(self) -> Values:
        """Every number of one snapshot, per seed, still on the device."""
        values, layers, activations = self.path.snapshot(self.mi_idx)
        labels = self.data.y if self.mi_idx is None else self.data.y[self.mi_idx]
        snap = Snapshot(self.epoch, self.beta, layers, activations, labels, self.mi_idx, extra={"values": values})
        for probe in self.probes:
            values.update(probe.at_snapshot(self, snap))
        return values

    def x_ids(self, snap: Snapshot) -> torch.Tensor | None:
        """Identity of each measured input (equal ids for repeated inputs), or None when all are distinct."""
        if self.data.distinct_inputs:
            return None
        ids = self.data.input_ids
        return ids if snap.point_idx is None else ids[snap.point_idx]

    def _records(self, values: Values) -> list[R.Record]:
        keys = list(values)
        table = torch.stack([values[k].float() for k in keys]).cpu()  # one copy to the host
        loss = values[("", Q.LOSS_TRAIN, "")].cpu()
        newly_dead = self.alive & ~torch.isfinite(loss)
        out: list[R.Record] = []
        run, epoch, step, sweep = self.sc.name, self.epoch, self.step, self.sweep
        for i in newly_dead.nonzero().flatten().tolist():
            out.append(R.Record(run, self.seeds[i], epoch, step, "", Q.SEED_DIVERGED, "", 1.0, sweep))
        self.alive &= ~newly_dead
        alive = self.alive
        alive_idx = alive.nonzero().flatten().tolist()
        for row, (layer, quantity, estimator) in zip(table, keys):
            values = row.tolist()
            for i in alive_idx:
                out.append(R.Record(run, self.seeds[i], epoch, step, layer, quantity, estimator, values[i], sweep))
            if alive_idx:
                finite = row[alive][torch.isfinite(row[alive])]
                mean = float(finite.mean()) if finite.numel() else math.nan
                out.append(R.Record(run, "mean", epoch, step, layer, quantity, estimator, mean, sweep))
        return out

    def _noise_record(self) -> R.Record:
        return R.Record(self.sc.name, "mean", self.epoch, self.step, "", Q.NOISE_BETA, "", float(self.beta),
                        self.sweep)

    # ------------------------------------------------------------------ the run
    def run(self, sink: R.Sink, controls: Controls | None = None) -> bool:
        """Train to the last epoch (True) or until controls.stop is set (False), emitting records to `sink`."""
        controls = controls or Controls()
        total = self.sc.run.epochs
        sink.start(self.info)
        t = {"train_s": 0.0, "trained": 0, "measure_s": 0.0, "measured": 0}  # for the ETA (records.Progress)
        if self.epoch == 0:
            t0 = time.perf_counter()
            sink.emit([self._noise_record(), *self._records(self.measure())])
            t["measure_s"], t["measured"] = time.perf_counter() - t0, 1
        snaps = sorted(self.snapshots)
        while self.epoch < total:
            if controls.should_stop():
                return False
            if controls.noise_index is not None and controls.noise_index != self.noise_index:
                self.noise_index = controls.noise_index % len(self.sc.model.noise_levels)
                sink.emit([self._noise_record()])
            t0 = time.perf_counter()
            self.train_epoch()
            t1 = time.perf_counter()
            t["train_s"] += t1 - t0
            t["trained"] += 1
            if self.epoch in self.snapshots:
                sink.emit(self._records(self.measure()))
                t["measure_s"] += time.perf_counter() - t1
                t["measured"] += 1
            sink.progress(R.Progress(self.epoch, total, int(self.alive.sum()), self.beta,
                                     bisect.bisect_right(snaps, self.epoch), len(snaps), **t))
        return True
