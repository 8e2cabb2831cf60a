"""The engine: trains every seed at once and emits records at snapshot epochs.

It owns the data, the batched model, the optimiser and the measurement schedule, and knows nothing
about Textual. `train_epoch` is the plain PyTorch loop it is tested against (tests/engine/
test_plain_equivalence.py): shuffle; for each batch: forward/backward, hooks, optimiser step. What is
model-specific (the hand-written backward, autograd for convolutions) is in a back end
(`ibtui.engine.backends`), epoch capture in `ibtui.engine.cuda_graph`; back ends, probes and regularisers
get a frozen `RunContext` and the step and epoch as arguments, never the Engine.

`run(sink, controls)` reads Controls between steps (pause) and at epoch boundaries (stop, noise level). In
the training loop nothing is copied to the host: losses and measures stay on the device until a snapshot
is emitted.
"""
from __future__ import annotations

import bisect
import math
import time
from dataclasses import replace
from typing import Callable, Iterable

import torch

from ibtui import compiled
from ibtui import quantities as Q
from ibtui import records as R
from ibtui.controls import Controls
from ibtui.data.loader import load_dataset
from ibtui.engine import checkpoint, rng
from ibtui.engine.backends import build_backend
from ibtui.engine.context import RunContext
from ibtui.engine.cuda_graph import EpochGraphs, graphs_possible
from ibtui.engine.device import describe, resolve_device
from ibtui.engine.overlap import LIVE_LAG_S, STOP_GRACE_S, MeasureQueue, Stopped, overlap_possible
from ibtui.engine.probes import build_probes
from ibtui.engine.probes.base import subset_points
from ibtui.engine.regularizers import build_regularizers
from ibtui.engine.schedule import learning_rate, snapshot_steps
from ibtui.engine.snapshot import Snapshot, Values, mi_points
from ibtui.measures.seeds import seed_mean
from ibtui.models.factory import build_model
from ibtui.scenario import Scenario, scenario_warnings


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
    """All seeds of one scenario, trained together. Construct, then `run(sink, controls)`."""

    def __init__(self, sc: Scenario, scenario_path: str = "", device: str | None = None, sweep: str = ""):
        self.sc = sc
        self.sweep = sweep  # "setting=value" when this engine runs one point of a sweep
        self.device = resolve_device(device or sc.run.device)
        self.seeds = list(range(sc.run.first_seed, sc.run.first_seed + sc.run.seeds))
        self.seed_tensor = torch.tensor(self.seeds, dtype=torch.int64, device=self.device)
        self.data = load_dataset(sc, self.seeds, self.device)
        self.model = build_model(sc, self.seeds, self.data).to(self.device)
        self.train_idx = self.data.train_indices()
        self.mi_idx = mi_points(sc.data.mi_points, self.data.train, self.data.test, sc.data.mi_subset)
        n_train, bs = self.train_idx.shape[1], sc.train.batch_size
        self.batches = [(start, min(start + bs, n_train)) for start in range(0, n_train, bs)]
        self.steps_per_epoch = len(self.batches)
        m = sc.measure
        steps = snapshot_steps(sc.run.epochs, self.steps_per_epoch, m.snapshots, m.schedule, m.snapshot_unit)
        self.snapshots = frozenset(R.epoch_at(s, self.steps_per_epoch) for s in steps)  # epochs, fractional inside
        self.inner_snapshots = frozenset(s for s in steps if s % self.steps_per_epoch)  # steps inside an epoch
        self.ctx = RunContext(sc=sc, device=self.device, seeds=tuple(self.seeds), seed_tensor=self.seed_tensor,
                              data=self.data, model=self.model, train_idx=self.train_idx, mi_idx=self.mi_idx,
                              snapshot_steps=frozenset(steps), steps_per_epoch=self.steps_per_epoch)
        self.backend = build_backend(self.ctx)
        use_graphs = sc.run.cuda_graph and graphs_possible(self.ctx)
        self.optimizer = build_optimizer(sc, [p for p in self.model.parameters() if p.requires_grad],
                                         capturable=use_graphs)
        self.lr = sc.train.lr
        self.noise_index = sc.model.noise_start
        self.epoch = 0
        self.step = 0  # optimiser steps taken
        self.alive = torch.ones(len(self.seeds), dtype=torch.bool)
        self.replayed: list[R.Record] = []  # a resumed run's records already in its export (Sink.replay)
        self.at_boundary = False  # True between a trained epoch's records and the next epoch: a checkpoint may be taken
        self.regularizers = build_regularizers(self.ctx)
        self.estimators, self.measures = build_probes(self.ctx)  # MI estimators; the other measures
        self.step_hooks = [*self.regularizers, *(p for p in self.probes if p.watches_steps)]
        self.graphs = EpochGraphs(self.device) if use_graphs else None
        # snapshot estimators on a second core while training goes on (ibtui.engine.overlap)
        self.measuring = MeasureQueue(overlap_possible(self.device) and bool(self.estimators))
        self._settle = False  # a checkpoint asked for the measurement in flight to be emitted (request_settle)
        self.info = self._info(scenario_path)

    # ------------------------------------------------------------------ description
    @property
    def beta(self) -> float:
        return self.sc.model.noise_levels[self.noise_index]

    @property
    def probes(self) -> list:
        return [*self.estimators, *self.measures]

    def _info(self, scenario_path: str) -> R.RunInfo:
        sc = self.sc
        n_points = self.data.x.shape[0] if self.mi_idx is None else self.mi_idx.shape[1]
        settings = {label: desc for p in self.probes for label, desc in p.estimators.items()}
        estimators = list(settings)
        notes = list(self.data.notes) + list(self.backend.notes) + [n for p in self.probes for n in p.notes]
        if self.data.distinct_inputs and "binning" in sc.measure.estimators:
            notes.append("binning: the measured inputs are distinct and the measured map is deterministic, "
                         "so H(T|X) = 0 and I(X;T) = H(T)"
                         + (" (noisy network: binning measures the noiseless representations)"
                            if max(sc.model.noise_levels) > 0 else ""))
        notes.extend(scenario_warnings(sc))  # settings that leave quantities empty (also printed by the CLI)
        notes.extend(compiled.notes())  # a kernel cache folder or library passed over as not the user's alone
        widths = [*getattr(self.model, "layer_widths", sc.model.hidden_widths), self.data.n_classes]
        return R.RunInfo(
            run=sc.name, scenario_path=scenario_path, device=describe(self.device), seeds=tuple(self.seeds),
            epochs=sc.run.epochs, layers=tuple(str(i) for i in range(1, len(widths) + 1)),
            layer_widths=tuple(widths), n_points=int(n_points), mi_points=sc.data.mi_points,
            estimators=tuple(estimators), estimator_settings=settings,
            noise_levels=tuple(sc.model.noise_levels), notes=tuple(notes), sweep=self.sweep,
            snapshot_epochs=tuple(sorted(self.snapshots)), training_step=getattr(self.backend, "training_step", ""),
            estimator_points=subset_points(self.probes, int(n_points)),
            kde_path=next((p.kde_path or "" for p in self.estimators if hasattr(p, "kde_path")), ""))

    # ------------------------------------------------------------------ training
    def train_epoch(self, controls: Controls | None = None, snapshot: Callable[[], None] | None = None) -> None:
        """One pass over each seed's training points in its own random order, all seeds at once:
        shuffle; for each batch: forward/backward, hooks, optimiser step. Waits between steps while paused.
        `snapshot()` is called after each step that a snapshot follows inside the epoch (measure.snapshot_unit =
        "step"); such an epoch runs step by step, never as a captured graph."""
        hooks = self.start_epoch()
        first, last = self.step, self.step + self.steps_per_epoch
        inside = snapshot is not None and any(first < s < last for s in self.inner_snapshots)
        if not inside and self._replayable(hooks):  # the same steps, captured once as a CUDA graph and replayed
            self._set_lr(self.step)
            self.graphs.run_epoch((self.beta, self.lr), self.step, lambda first: self._steps(first, hooks))
            self.step += self.steps_per_epoch
        else:
            for start, stop in self.batches:
                self._set_lr(self.step)
                self.train_step(self.step, start, stop, hooks)
                self.step += 1
                if inside and self.step in self.inner_snapshots:
                    snapshot()
                if controls is not None and controls.paused.is_set():
                    controls.wait_while_paused()
        self.epoch += 1

    def start_epoch(self) -> list:
        """Shuffle each seed's training points for this epoch (its own order, from (seed, epoch) only) into the
        back end; returns the step hooks that watch this epoch."""
        n_train = self.train_idx.shape[1]
        perm = rng.permutations(self.seed_tensor, (rng.STREAM_BATCH, self.epoch), n_train)
        self.backend.start_epoch(self.train_idx.gather(1, perm))
        return [h for h in self.step_hooks if h.watches_epoch(self.epoch)]

    def train_step(self, step: rng.Counter, start: int, stop: int, hooks: list) -> None:
        """One optimiser step on batch [start, stop) of the epoch's order; `step` draws the noise (a device
        counter while an epoch is captured)."""
        self.backend.forward_backward(start, stop, self.beta, step)  # every seed's gradient of its own loss
        for hook in hooks:  # regularisers add to the gradients; probes read them
            hook.after_step(step, self.epoch)
        self.optimizer.step()

    def _steps(self, first: rng.Counter, hooks: list) -> None:
        """The epoch's steps from step counter `first`: what a CUDA graph captures (or its warm-up runs)."""
        for i, (start, stop) in enumerate(self.batches):
            self.train_step(first + i, start, stop, hooks)

    def _replayable(self, hooks: list) -> bool:
        """Whether this epoch may run as a captured graph: graphs on, hooks graph-safe, one learning rate."""
        if self.graphs is None or not self.graphs.covers(hooks):
            return False
        return self._lr_of(self.step) == self._lr_of(self.step + self.steps_per_epoch - 1)

    def _lr_of(self, step: int) -> float:
        t = self.sc.train
        return learning_rate(step, t.lr, t.lr_milestones, t.lr_decay)

    def _set_lr(self, step: int) -> None:
        """The learning rate of step `step` (train.lr_milestones), set in the optimiser when it changes."""
        lr = self._lr_of(step)
        if lr != self.lr:
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            self.lr = lr

    # ------------------------------------------------------------------ measurement
    def measure(self) -> Values:
        """Every number of one snapshot, per seed, still on the device."""
        return self.snapshot_job()[0]()[2]

    def _submit_snapshot(self) -> list[tuple[int, int, Values]]:
        """Take a snapshot and queue its job; returns the results the queue waited for first."""
        job, nbytes = self.snapshot_job()
        return self.measuring.submit(job, nbytes)

    @torch.no_grad()
    def snapshot_job(self) -> tuple[Callable[[], tuple[int, int, Values]], int]:
        """Take a snapshot now; returns the job that finishes it, () → (epoch, step, values), and the bytes of
        activations it holds.

        Now: the snapshot pass (loss, accuracy and activations, from the back end) and the part of each probe's
        work that reads the model or the step state (`Probe.start`). The job does the rest (the estimators'
        sums, the measures' use of the last hidden layer's I(X;T)); it reads only what was taken now, so it may
        run on a worker thread while training continues (ibtui.engine.overlap) and gives the same values.
        They come in one order: losses, estimators, measures (which see the first estimator's I(X;T) of the
        last hidden layer).
        """
        losses, layers, activations = self.backend.snapshot(self.mi_idx)
        labels = self.data.y if self.mi_idx is None else self.data.y[self.mi_idx]
        epoch, step = self._snapshot_epoch(), self.step
        snap = Snapshot(epoch, self.beta, layers, activations, labels, self.mi_idx,
                        x_ids=self.ctx.x_ids(self.mi_idx), losses=losses, key=self._snapshot_key())
        estimated = [probe.start(snap) for probe in self.estimators]
        measured = [probe.start(snap) for probe in self.measures]

        def finish() -> tuple[int, int, Values]:
            with torch.no_grad():  # grad mode is per thread
                values = dict(losses)
                for rest in estimated:
                    values.update(rest(snap))
                final = replace(snap, last_hidden_mi_xt=last_hidden_mi_xt(values, len(layers)))
                for rest in measured:
                    values.update(rest(final))
                return epoch, step, values

        return finish, sum(h.numel() * h.element_size() for h in layers)

    def _snapshot_epoch(self) -> int | float:
        """The epoch of a snapshot taken now: the epochs done, plus the fraction of this one (a step-unit run)."""
        return R.epoch_at(self.step, self.steps_per_epoch) if self.step % self.steps_per_epoch else self.epoch

    def _snapshot_key(self) -> int:
        """The counter of a snapshot's random measuring draws (SP, KSG): its epoch, as always in an epoch-unit run;
        its step in a step-unit run, where several snapshots share an epoch."""
        return self.step if self.sc.measure.snapshot_unit == "step" else self.epoch

    def _progress(self, snaps: list[int], times: dict) -> R.Progress:
        """Where the run stands now: epochs, snapshots taken (of `snaps`, sorted), `times` (Progress's timing
        fields), and the snapshots still being measured."""
        return R.Progress(self.epoch, self.sc.run.epochs, int(self.alive.sum()), self.beta,
                          bisect.bisect_right(snaps, self.epoch), len(snaps), **times,
                          measuring=self.measuring.in_flight, measure_job_s=self.measuring.job_s)

    def _emit(self, sink: R.Sink, results: list[tuple[int, int, Values]]) -> None:
        for epoch, step, values in results:
            sink.emit(self._records(values, epoch, step))

    def request_settle(self) -> None:
        """Emit the snapshot in flight at the next epoch boundary, so that `at_boundary` holds there (a
        checkpoint is due: its CSV length must include every snapshot its epoch has passed)."""
        self._settle = True

    def _records(self, values: Values, epoch: int, step: int) -> list[R.Record]:
        finite = torch.isfinite(values[("", Q.LOSS_TRAIN, "")].cpu())
        out, self.alive = seed_records(values, self.alive, finite, self.seeds, self.sc.name, self.sweep, epoch, step)
        return out

    def _noise_record(self) -> R.Record:
        return R.Record(self.sc.name, "mean", self.epoch, self.step, "", Q.NOISE_BETA, "", float(self.beta),
                        self.sweep)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """Everything the run needs to continue from this epoch boundary exactly (ibtui.engine.checkpoint)."""
        return {"epoch": self.epoch, "step": self.step, "lr": self.lr, "noise_index": self.noise_index,
                "alive": self.alive.clone(), "model": checkpoint.capture(self.model.state_dict()),
                "optimizer": checkpoint.capture(self.optimizer.state_dict()),
                "probes": [checkpoint.capture(p) for p in self.probes],
                "regularizers": [checkpoint.capture(r) for r in self.regularizers],
                "training_step": self.info.training_step, "kde_path": self.info.kde_path}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a `state_dict` of an engine built from the same scenario, once it is checked against this
        engine's own (`checkpoint.check_state`: a crafted one raises checkpoint.Bad before anything is set)."""
        checkpoint.check_state(self, state)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        for obj, saved in [*zip(self.probes, state["probes"]), *zip(self.regularizers, state["regularizers"])]:
            checkpoint.restore(obj, saved, self.device)
        self.epoch, self.step, self.noise_index = int(state["epoch"]), int(state["step"]), int(state["noise_index"])
        self.alive = state["alive"].clone()
        self.lr = float(state["lr"])
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr
        step = state.get("training_step")  # the step the run began with (auto may choose otherwise today)
        if step in ("compiled", "pytorch") and step != self.info.training_step and hasattr(self.backend, "use_step"):
            self.backend.use_step(step)
            self.info = self._info(self.info.scenario_path)
        if self.info.kde_path:  # the KDE path the run began with; none saved: the rule before measure.kde.path
            kde = state.get("kde_path") or None
            if kde != self.info.kde_path:
                for p in self.estimators:
                    if hasattr(p, "use_path"):
                        p.use_path(kde)
                self.info = self._info(self.info.scenario_path)
        self.at_boundary = True

    # ------------------------------------------------------------------ the run
    def run(self, sink: R.Sink, controls: Controls | None = None) -> bool:
        """Train to the last epoch (True) or until controls.stop is set (False), emitting records to `sink`."""
        controls = controls or Controls()
        total = self.sc.run.epochs
        sink.start(self.info)
        if self.replayed:
            sink.replay(self.replayed)
            self.replayed = []
        t = {"train_s": 0.0, "trained": 0, "measure_s": 0.0, "measured": 0}  # for the ETA (records.Progress)
        self.measuring.stop = controls.stop  # a stop ends any wait for a snapshot at once
        self.measuring.max_lag_s = LIVE_LAG_S if controls.live else math.inf
        try:
            if self.epoch == 0:
                t0 = time.perf_counter()
                sink.emit([self._noise_record()])
                self._emit(sink, self._submit_snapshot())
                t["measure_s"], t["measured"] = time.perf_counter() - t0, 1
            snaps = sorted(self.snapshots)

            def inner_snapshot() -> None:  # a snapshot inside the epoch (measure.snapshot_unit = "step")
                t0, waited, training = time.perf_counter(), self.measuring.waited_s, self.model.training
                self._emit(sink, self._submit_snapshot())
                self.model.train(training)  # a back end's snapshot pass may leave the model in eval mode
                spent = time.perf_counter() - t0 - (self.measuring.waited_s - waited)
                t["measure_s"] += spent
                t["measured"] += 1
                t["train_s"] -= spent  # counted by the epoch's timer: it is measuring time

            while self.epoch < total:
                if controls.should_stop():
                    return self._stop_now(sink, boundary=True)
                if controls.noise_index is not None and controls.noise_index != self.noise_index:
                    self._emit(sink, self.measuring.drain())  # the noise record follows the snapshots before it
                    self.noise_index = controls.noise_index % len(self.sc.model.noise_levels)
                    sink.emit([self._noise_record()])
                t0 = time.perf_counter()
                self.at_boundary = False
                self.train_epoch(controls, inner_snapshot)
                t1 = time.perf_counter()
                t["train_s"] += t1 - t0
                t["trained"] += 1
                if self.epoch in self.snapshots:
                    waited = self.measuring.waited_s  # a full queue's wait is the worker's time, not this thread's
                    self._emit(sink, self._submit_snapshot())
                    t["measure_s"] += time.perf_counter() - t1 - (self.measuring.waited_s - waited)
                    t["measured"] += 1
                self._emit(sink, self.measuring.drain() if self._settle else self.measuring.ready())
                self._settle = False
                self.at_boundary = not self.measuring.pending
                sink.progress(self._progress(snaps, t))
            while self.measuring.pending:  # the snapshots still in flight, each followed by where the run stands
                self._emit(sink, [self.measuring.oldest()])
                sink.progress(self._progress(snaps, t))
            self.at_boundary = True
            return True
        except Stopped:  # stopped while waiting for a snapshot (the queue full, a settle, the last ones)
            return self._stop_now(sink, boundary=False)
        finally:
            self.measuring.close()

    def _stop_now(self, sink: R.Sink, boundary: bool) -> bool:
        """Stop without waiting long for the measuring worker: the snapshots it finishes within STOP_GRACE_S are
        emitted, the others dropped. Only where none was dropped at an epoch boundary is this a boundary a
        checkpoint may be taken at; otherwise the last periodic checkpoint stays, and `ibtui resume` trains again
        from it and measures the dropped snapshots then (the CSV rows after it are replaced), so the export still
        ends as if the run had never stopped."""
        self._emit(sink, self.measuring.finish_within(STOP_GRACE_S) if boundary else self.measuring.ready())
        dropped = self.measuring.close()
        self.at_boundary = boundary and not dropped
        return False


def seed_records(values: Values, alive: torch.Tensor, finite: torch.Tensor, seeds: list, run: str, sweep: str,
                 epoch: int, step: int) -> tuple[list[R.Record], torch.Tensor]:
    """One snapshot's values {(layer, quantity, estimator): Tensor[S]} as records: a seed alive until now whose
    `finite` [S] is False gets a `diverged` record and no more rows; every other live seed its rows, and each key
    the mean over the live seeds. Returns (records, the seeds still alive). The engine's and ibtui.watch's rows."""
    keys = list(values)
    table = torch.stack([values[k].float() for k in keys]).cpu()  # one copy to the host
    newly_dead = alive & ~finite
    out: list[R.Record] = []
    for i in newly_dead.nonzero().flatten().tolist():
        out.append(R.Record(run, seeds[i], epoch, step, "", Q.SEED_DIVERGED, "", 1.0, sweep))
    alive = alive & ~newly_dead
    alive_idx = alive.nonzero().flatten().tolist()
    for row, (layer, quantity, estimator) in zip(table, keys):
        row_values = row.tolist()
        for i in alive_idx:
            out.append(R.Record(run, seeds[i], epoch, step, layer, quantity, estimator, row_values[i], sweep))
        if alive_idx:
            out.append(R.Record(run, "mean", epoch, step, layer, quantity, estimator,
                                seed_mean(row[alive], quantity), sweep))
    return out, alive


def last_hidden_mi_xt(values: Values, n_layers: int) -> torch.Tensor | None:
    """I(X;T) of the last hidden layer (layer n_layers − 1) by the first MI estimator that measured it."""
    last_hidden = str(n_layers - 1)
    return next((v for (layer, q, _), v in values.items() if layer == last_hidden and q == Q.MI_XT), None)
