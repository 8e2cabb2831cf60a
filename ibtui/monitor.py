"""`ibtui.watch(model, …)`: a researcher's own torch model, trained by their own loop, measured by ibtui.

The monitor is the engine's measuring half without its training half. At each snapshot it runs the model on
the MI inputs (no_grad, eval mode, the model's modes and the user's random state restored afterwards) with
forward hooks on the watched modules, and hands the activations to the engine's probes (`build_probes`, so
every estimator a scenario may name) as a `Snapshot`; their sums run on the engine's measuring worker
(`MeasureQueue`), not on the user's thread. `step()` reads the watched layers' weight gradients with the
dynamics probe's measures (`GradientMoments`, `weight_norms`, `TransitionDetector`: the same SNR definition,
window = the last epoch before a snapshot). The records go through the engine's `seed_records` into a
`CsvSink`, so the export and its sidecar are a run's: `ibtui view`, `ibtui plot` and `ibtui.load` read it.

Several models (`watch([a, b], …)`) are seeds trained in lockstep: one seed a model, batched as the engine
batches seeds. What it does not do: train, choose the inputs, measure sample-propagation or exact MI (they need
ibtui's own noisy networks), or compute the Gaussian bound of the dynamics pane.
"""
from __future__ import annotations

import difflib
import math
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from ibtui.errors import IbtuiError

__all__ = ["watch", "Monitor"]

# What a scenario may name but the monitor cannot measure on a model it did not build.
UNSUPPORTED = {"sp": "sample propagation needs the noisy forward pass of ibtui's own networks",
               "exact": "the exact quadrature is for the saturation toy's one-unit noisy layer"}
# Activations of a snapshot may take at most this share of the free memory (estimated before the first).
MEMORY_SHARE = 0.5
ACTIVATIONS = {"Tanh": "tanh", "ReLU": "relu", "ReLU6": "relu", "Sigmoid": "sigmoid", "Softmax": "softmax"}
WHO = "ibtui.watch"


def watch(model, inputs, labels, layers: Sequence, export: str | Path = "run.csv", every: int | None = None,
          epochs: int | None = None, snapshots: int = 30, estimators: Sequence[str] = ("binning",),
          scenario_name: str = "watched", settings: Mapping[str, Any] | None = None, overwrite: bool = False,
          chunk: int = 1024) -> "Monitor":
    """A monitor for `model` (a torch.nn.Module, or a list of them: one seed each, trained in lockstep).

    `inputs` [N, …] and `labels` [N] (class ids) are the points MI is measured on; `layers` names modules
    (`model.named_modules()` names, or the modules). Snapshots: epoch 0 now, then every `every` epochs, or
    `snapshots` log-spaced epochs of `epochs` (the scenarios' schedule); `every` = 1 when neither is given.
    `settings` are scenario settings ({"measure.kde.noise_variance": 0.1}); binning's range is "auto" here
    (from each watched module: tanh [−1, 1], sigmoid/softmax [0, 1], ReLU [0, max], else [min, max]).
    Call `step(loss=…, batch_size=…)` after each optimiser step, `epoch(n, …)` after n epochs, `close()` at the
    end (or use it as a context manager). Bad input raises IbtuiError (one sentence)."""
    return Monitor(model, inputs, labels, layers, export, every, epochs, snapshots, estimators, scenario_name,
                   settings, overwrite, chunk)


class _Due:
    """What `with mon.snapshot(epoch) as snap:` yields: `due` says whether this epoch is measured; set the
    values you have (train_loss, test_loss, train_acc, test_acc) on it."""

    def __init__(self, due: bool):
        self.due = due
        self.train_loss = self.test_loss = self.train_acc = self.test_acc = None


class Monitor:
    """See `watch`. Attributes: `path` (the CSV), `layer_names`, `widths`, `notes`, `epoch_done`, `steps`."""

    def __init__(self, model, inputs, labels, layers, export, every, epochs, snapshots, estimators, scenario_name,
                 settings, overwrite, chunk):
        import torch

        self._closed = True  # until the export is open
        models = list(model) if isinstance(model, (list, tuple)) else [model]
        if not models or not all(isinstance(m, torch.nn.Module) for m in models):
            raise IbtuiError(f"{WHO}: model must be a torch.nn.Module or a list of them (one seed each), not "
                             f"{type(model).__name__}.")
        self.models = models
        self.n_seeds = len(models)
        self.every, self.epochs = self._schedule_args(every, epochs, snapshots)
        self.chunk = int(chunk) if isinstance(chunk, int) and chunk > 0 else 0
        if not self.chunk:
            raise IbtuiError(f"{WHO}: chunk = {chunk!r} must be a positive number of inputs a forward pass.")
        self.sc = self._scenario(estimators, scenario_name, settings, snapshots)
        from ibtui.sinks.csv import check_targets

        check_targets(Path(export), overwrite)  # before any work: a run already there is kept unless overwrite
        self.device = self._device()
        self.x, self.y, self.n_classes = self._points(inputs, labels)
        self.layer_names = self._layer_names(layers)
        self.modules = [[dict(m.named_modules())[name] for name in self.layer_names] for m in models]
        self.notes: list[str] = []
        self._shapes()  # widths, activations, weights of each layer (a forward of two inputs)
        self._check_widths()
        self._check_memory()
        self._setup_probes()
        self._setup_dynamics()
        self.alive = torch.ones(self.n_seeds, dtype=torch.bool)
        self.epoch_done, self.steps = 0, 0
        self._loss_sum: list = [0.0] * self.n_seeds
        self._loss_weight = 0.0
        self._times = {"train_s": 0.0, "trained": 0, "measure_s": 0.0, "measured": 0}
        self._t_epoch = time.perf_counter()
        self._open_export(export, overwrite, every, epochs, snapshots, estimators, scenario_name, settings)
        try:
            self._snapshot(0, {})
        except BaseException as exc:  # the export stays valid (no snapshot) and the lock is released
            self._closed = True
            self.queue.close()
            self.sink.close(False)
            from ibtui.resources import is_out_of_memory

            if is_out_of_memory(exc):
                raise IbtuiError(f"{WHO}: out of memory in the first snapshot's pass over {self.x.shape[0]:,} inputs; "
                                 f"pass a smaller chunk (chunk={max(self.chunk // 4, 1)}) or fewer inputs.") from None
            raise
        self._start_window(1)

    # ------------------------------------------------------------------ checks, before anything is written
    def _schedule_args(self, every, epochs, snapshots) -> tuple[int | None, int | None]:
        for name, v in (("every", every), ("epochs", epochs)):
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise IbtuiError(f"{WHO}: {name} = {v!r} must be a whole number of epochs ≥ 1 (or None).")
        if not isinstance(snapshots, int) or snapshots < 1:
            raise IbtuiError(f"{WHO}: snapshots = {snapshots!r} must be a whole number ≥ 1.")
        if every is None and epochs is None:
            every = 1
        if every is None:
            from ibtui.engine.schedule import snapshot_epochs

            self._log = frozenset(snapshot_epochs(epochs, snapshots, "log"))
        else:
            self._log = None
        return every, epochs

    def due(self, epoch: int) -> bool:
        """Whether epoch `epoch` (epochs completed) is a snapshot."""
        if self._log is not None:
            return epoch in self._log
        return epoch % self.every == 0 or epoch == self.epochs

    def _scenario(self, estimators, name, settings, snapshots):
        from ibtui.api import overrides
        from ibtui.scenario import parse_scenario

        if isinstance(estimators, str):
            estimators = [estimators]
        estimators = list(estimators)
        for est in estimators:
            if est in UNSUPPORTED:
                raise IbtuiError(f"{WHO}: estimators has {est!r}, but {UNSUPPORTED[est]}; watch with another "
                                 f"estimator (binning, kde, …).")
        if settings is not None and not isinstance(settings, Mapping):
            raise IbtuiError(f"{WHO}: settings must be a dict of scenario settings, e.g. "
                             f"{{'measure.kde.noise_variance': 0.1}}.")
        changes = {"name": str(name), "run.seeds": self.n_seeds, "run.epochs": self.epochs or 0,
                   "run.checkpoint_every": 0.0, "measure.estimators": estimators, "measure.snapshots": snapshots,
                   "measure.schedule": "log", "measure.binning.range": "auto", **dict(settings or {})}
        sc = parse_scenario("", origin=WHO, overrides=overrides(changes))
        if sc.measure.clustering.enabled:
            raise IbtuiError(f"{WHO}: measure.clustering is not measured on a watched model; remove it from "
                             f"settings.")
        if sc.measure.dynamics.window_steps > 0:
            raise IbtuiError(f"{WHO}: measure.dynamics.window_steps is not supported (the SNR window is the last "
                             f"epoch before each snapshot); remove it from settings.")
        return sc

    def _device(self):
        devices = {self._param_device(m) for m in self.models}
        if len(devices) > 1:
            raise IbtuiError(f"{WHO}: the models are on different devices ({', '.join(sorted(map(str, devices)))}); "
                             f"move them to one device.")
        return devices.pop()

    @staticmethod
    def _param_device(model):
        import torch

        p = next(iter(model.parameters()), None)
        p = p if p is not None else next(iter(model.buffers()), None)
        return p.device if p is not None else torch.device("cpu")

    def _points(self, inputs, labels):
        import torch

        try:
            x = inputs if isinstance(inputs, torch.Tensor) else torch.as_tensor(inputs)
            y = labels if isinstance(labels, torch.Tensor) else torch.as_tensor(labels)
        except (TypeError, ValueError, RuntimeError):
            raise IbtuiError(f"{WHO}: inputs and labels must be tensors or arrays (labels: class ids 0…C−1)."
                             ) from None
        if x.dim() < 1 or y.dim() < 1 or x.shape[0] != y.shape[0]:
            raise IbtuiError(f"{WHO}: inputs has {x.shape[0] if x.dim() else 0} points but labels has "
                             f"{y.shape[0] if y.dim() else 0}; pass one class id a point.")
        if any(d != 1 for d in y.shape[1:]):
            raise IbtuiError(f"{WHO}: labels has shape {tuple(y.shape)}, several numbers a point (one-hot?); pass "
                             f"class ids 0…C−1, e.g. labels.argmax(1).")
        y = y.reshape(-1)
        if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
            raise IbtuiError(f"{WHO}: labels are {str(y.dtype).replace('torch.', '')}, not class ids; pass integers "
                             f"0…C−1 (e.g. labels.long() if they are whole numbers).")
        if x.shape[0] < 2:
            raise IbtuiError(f"{WHO}: inputs has {x.shape[0]} point(s); MI needs at least 2 (a few thousand is usual).")
        if int(y.min()) < 0:
            raise IbtuiError(f"{WHO}: labels has the negative value {int(y.min())}; pass class ids 0…C−1.")
        if x.device != self.device:
            raise IbtuiError(f"{WHO}: the inputs are on {x.device} but the model is on {self.device}; move them "
                             f"with inputs.to({str(self.device)!r}).")
        dtype = next((p.dtype for m in self.models for p in m.parameters() if p.is_floating_point()), None)
        if x.is_floating_point() and dtype is not None and x.dtype != dtype:
            x = x.to(dtype)  # the model's dtype (a float64 or half model gets its own)
        return x, y.to(device=self.device, dtype=torch.int64), int(y.max()) + 1

    def _layer_names(self, layers) -> list[str]:
        import torch

        if isinstance(layers, (str, torch.nn.Module)):
            layers = [layers]
        layers = list(layers or [])
        if not layers:
            raise IbtuiError(f"{WHO}: layers is empty; name the modules to watch, e.g. layers=['fc1', 'fc2'] "
                             f"(names from model.named_modules()).")
        known = dict(self.models[0].named_modules())
        by_id = {id(mod): name for name, mod in known.items()}
        names = []
        for layer in layers:
            if isinstance(layer, torch.nn.Module):
                if id(layer) not in by_id:
                    raise IbtuiError(f"{WHO}: layers has a {type(layer).__name__} that is not a module of the "
                                     f"{'first ' if len(self.models) > 1 else ''}model; pass its name from "
                                     f"model.named_modules().")
                names.append(by_id[id(layer)])
            elif isinstance(layer, str):
                names.append(layer)
            else:
                raise IbtuiError(f"{WHO}: layers has {layer!r}; name modules (strings) or pass the modules.")
        for i, model in enumerate(self.models):
            known = dict(model.named_modules())
            for name in names:
                if name not in known:
                    close = difflib.get_close_matches(name, [k for k in known if k], n=3, cutoff=0.5)
                    hint = (f"close names: {', '.join(repr(c) for c in close)}" if close else
                            f"its modules are {', '.join(repr(k) for k in list(known)[1:9] if k)}"
                            f"{' …' if len(known) > 9 else ''}")
                    which = f"model {i}" if len(self.models) > 1 else "the model"
                    raise IbtuiError(f"{WHO}: layers has {name!r}, which is not a module of {which}; {hint}.")
        if len(set(names)) < len(names):
            raise IbtuiError(f"{WHO}: layers names a module twice; list each once.")
        return names

    def _shapes(self) -> None:
        """A forward of two inputs through each model with hooks: each watched layer's output shape (tensor, or a
        tuple's first tensor), and which weights feed it (the weight matrices run since the layer before)."""
        import torch

        self.widths, self.shapes, self.activations, self.weights = None, None, None, []
        probe = self.x[:2]
        for s, model in enumerate(self.models):
            events: list[tuple[str, Any]] = []
            outputs: dict[int, Any] = {}
            watched = {id(m): j for j, m in enumerate(self.modules[s])}
            handles = []
            for mod in model.modules():
                direct = [p for n, p in mod.named_parameters(recurse=False) if n == "weight" and p.dim() >= 2]
                if direct or id(mod) in watched:
                    def hook(m, args, out, direct=direct):
                        if direct:
                            events.append(("weights", direct))
                        if id(m) in watched:
                            events.append(("layer", watched[id(m)]))
                            outputs.setdefault(watched[id(m)], out)
                    handles.append(mod.register_forward_hook(hook))
            try:
                with self._quiet(), torch.no_grad():
                    model(probe)
            except IbtuiError:
                raise
            except Exception as exc:  # the user's model refused two of the inputs
                text = str(exc).strip().splitlines()
                raise IbtuiError(f"{WHO}: the model fails on inputs[:2] ({type(exc).__name__}: "
                                 f"{text[0][:160] if text else ''}); pass inputs the model takes.") from None
            finally:
                for h in handles:
                    h.remove()
            shapes, acts = [], []
            for j, name in enumerate(self.layer_names):
                if j not in outputs:
                    raise IbtuiError(f"{WHO}: layer {name!r} did not run in the model's forward pass; watch a module "
                                     f"that forward() calls.")
                out = self._first_tensor(outputs[j], name, note=s == 0)
                if out.dim() < 1 or out.shape[0] != probe.shape[0]:
                    raise IbtuiError(f"{WHO}: layer {name!r} gives shape {tuple(out.shape)} for {probe.shape[0]} "
                                     f"inputs; watch a module whose output has one row an input.")
                shapes.append(tuple(out.shape[1:]))
                acts.append(ACTIVATIONS.get(type(self.modules[s][j]).__name__, "linear"))
            layer_weights: list[list] = [[] for _ in self.layer_names]
            pending, seen = [], set()
            for kind, what in events:
                if kind == "weights":
                    pending += [w for w in what if id(w) not in seen]
                    seen.update(id(w) for w in what)
                else:
                    layer_weights[what] += pending
                    pending = []
            if self.shapes is None:
                self.shapes, self.activations = shapes, acts
            elif shapes != self.shapes:
                raise IbtuiError(f"{WHO}: model {s}'s watched layers have shapes {shapes}, model 0's {self.shapes}; "
                                 f"models watched together must have the same layers.")
            self.weights.append(layer_weights)
        self.widths = [math.prod(shape) for shape in self.shapes]

    @contextmanager
    def _quiet(self) -> Iterator[None]:
        """Eval mode and the user's random state for a measuring pass; every module's mode and the RNG restored."""
        import torch

        modes = [(m, m.training) for model in self.models for m in model.modules()]
        cpu_state = torch.get_rng_state()
        cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
        cuda_states = torch.cuda.get_rng_state_all() if cuda else None
        try:
            for model in self.models:
                model.eval()
            yield
        finally:
            for m, training in modes:
                m.training = training
            torch.set_rng_state(cpu_state)
            if cuda_states is not None:
                torch.cuda.set_rng_state_all(cuda_states)

    def _first_tensor(self, out, name: str, note: bool = False):
        import torch

        if isinstance(out, torch.Tensor):
            return out
        if isinstance(out, (tuple, list)):
            for i, item in enumerate(out):
                if isinstance(item, torch.Tensor):
                    if note:
                        self.notes.append(f"watch: layer {name!r} returns a {type(out).__name__}; its item {i} (the "
                                          f"first tensor) is measured")
                    return item
        raise IbtuiError(f"{WHO}: layer {name!r} returns {type(out).__name__}, not a tensor; watch a module that "
                         f"returns one (or a tuple holding one).")

    def _check_widths(self) -> None:
        for est in self.sc.measure.estimators:
            limit = getattr(getattr(self.sc.measure, est, None), "max_width", None)
            for name, width in zip(self.layer_names, self.widths):
                if limit is not None and width > limit:
                    raise IbtuiError(f"{WHO}: layer {name!r} has {width} units, more than measure.{est}.max_width "
                                     f"= {limit} (there the estimate says nothing about the network); watch a "
                                     f"narrower layer, drop {est!r}, or raise it with settings="
                                     f"{{'measure.{est}.max_width': {width}}}.")

    def _check_memory(self) -> None:
        from ibtui.resources import available_bytes, gib

        need = self.n_seeds * self.x.shape[0] * sum(self.widths) * 4
        have, where = available_bytes(self.device)
        if have is not None and need > MEMORY_SHARE * have:
            raise IbtuiError(f"{WHO}: a snapshot's activations take {gib(need)} ({self.n_seeds} model(s) × "
                             f"{self.x.shape[0]:,} inputs × {sum(self.widths):,} units × 4 bytes), more than half of "
                             f"the {gib(have)} {where.replace(' has', '')} has free; watch fewer or narrower layers, "
                             f"or pass fewer inputs.")

    # ------------------------------------------------------------------ the engine's parts
    def _setup_probes(self) -> None:
        import torch

        from ibtui.data.dataset import Dataset
        from ibtui.engine.context import RunContext
        from ibtui.engine.overlap import MeasureQueue
        from ibtui.engine.probes import build_probes
        from ibtui.scenario import with_changes

        n = self.x.shape[0]
        ids = torch.unique(self.x.reshape(n, -1), dim=0, return_inverse=True)[1]
        distinct = int(ids.max()) + 1 == n
        self.x_ids = None if distinct else ids
        s = self.n_seeds
        everything = torch.ones(s, n, dtype=torch.bool, device=self.device)
        data = Dataset("watch", self.x if self.x.is_floating_point() else self.x.float(), self.y, self.n_classes,
                       everything, ~everything, distinct, input_ids=None if distinct else ids)
        seeds = tuple(range(s))
        # the estimators only: the dynamics are the monitor's own (the engine's probe reads batched weights)
        sc = with_changes(self.sc, {"measure.dynamics.enabled": False}, origin=WHO)
        ctx = RunContext(sc=sc, device=self.device, seeds=seeds, seed_tensor=torch.tensor(seeds, device=self.device),
                         data=data, model=None, train_idx=torch.arange(n, device=self.device).expand(s, n),
                         mi_idx=None, snapshot_steps=frozenset(self._log or ()), steps_per_epoch=1)
        self.probes, _ = build_probes(ctx)
        self.estimator_settings = {label: desc for p in self.probes for label, desc in p.estimators.items()}
        if "binning" in self.sc.measure.estimators and self.sc.measure.binning.range == "auto" \
                and self.sc.measure.binning.width <= 0:
            from ibtui.engine.probes.binning import binning_label

            ranges = ", ".join(f"{name} {act}" for name, act in zip(self.layer_names, self.activations))
            self.estimator_settings[binning_label(self.sc.measure.binning)] = (
                f"{self.sc.measure.binning.bins} equal bins, range from each watched module ({ranges}: tanh "
                f"[-1, 1], sigmoid/softmax [0, 1], relu [0, max], linear [min, max])")
        self.notes += [n for p in self.probes for n in p.notes]
        if distinct and "binning" in self.sc.measure.estimators:
            self.notes.append("binning: the inputs are distinct and the measuring pass is deterministic (eval mode), "
                              "so H(T|X) = 0 and I(X;T) = H(T)")
        self.queue = MeasureQueue(True, workers=1)  # a KDE path auto-timed at the first snapshot is one job's

    def _setup_dynamics(self) -> None:
        import torch

        from ibtui.measures.gradients import SNR_DEFINITION, GradientMoments, TransitionDetector

        st = self.sc.measure.dynamics
        self.dynamics = st.enabled
        if not self.dynamics:
            return
        # per model: its weight tensors in one list, and which of them make up each watched layer
        self.flat = [[w for ws in layers for w in ws] for layers in self.weights]
        self.groups = []
        for layers in self.weights:
            i, groups = 0, []
            for ws in layers:
                groups.append(list(range(i, i + len(ws))))
                i += len(ws)
            self.groups.append(groups)
        self.w0 = [[w.detach().clone() for w in flat] for flat in self.flat]
        self.moments = [GradientMoments(1, len(flat), device=self.device, dtype=torch.float32) for flat in self.flat]
        self.detector = TransitionDetector(self.n_seeds, len(self.layer_names), window=st.window, margin=st.margin,
                                           hold=st.hold, device=self.device)
        self._window = False
        empty = [name for name, ws in zip(self.layer_names, self.weights[0]) if not ws]
        owned = "; ".join(f"{name}: {len(ws)} weight tensor(s)" for name, ws in zip(self.layer_names, self.weights[0]))
        snr_form = "reported squared (SNR²)" if st.snr == "squared" else "reported as the ratio"
        self.notes.append(f"dynamics: {SNR_DEFINITION}; {snr_form}; a watched layer's weights are the weight "
                          f"matrices its module and those run since the previous watched layer hold ({owned}), "
                          f"taken as one vector; window = the steps between the last two epoch() calls before "
                          f"each snapshot"
                          + (f"; no weights before {', '.join(empty)}, so its dynamics are NaN" if empty else ""))

    def _open_export(self, export, overwrite, every, epochs, snapshots, estimators, scenario_name, settings) -> None:
        from ibtui import records as R
        from ibtui.engine.device import describe
        from ibtui.engine.probes.base import subset_points
        from ibtui.scenario import to_dict, to_toml
        from ibtui.sinks.csv import CsvSink

        self.path = Path(export)
        layers = [{"layer": str(j + 1), "name": name, "module": type(self.modules[0][j]).__name__,
                   "output_shape": list(shape), "units": width, "binning_range": act,
                   "weights": [self._param_name(w) for w in self.weights[0][j]]}
                  for j, (name, shape, width, act) in enumerate(zip(self.layer_names, self.shapes, self.widths,
                                                                    self.activations))]
        monitor = {
            "models": [{"class": type(m).__name__, "parameters": sum(p.numel() for p in m.parameters()),
                        "repr": repr(m)[:20000]} for m in self.models],
            "layers": layers,
            "inputs": {"points": int(self.x.shape[0]), "shape": list(self.x.shape[1:]),
                       "dtype": str(self.x.dtype).replace("torch.", ""), "classes": self.n_classes},
            "arguments": {"layers": list(self.layer_names), "export": str(export), "every": every, "epochs": epochs,
                          "snapshots": snapshots, "estimators": list(self.sc.measure.estimators),
                          "scenario_name": scenario_name, "settings": {k: repr(v) for k, v in (settings or {}).items()},
                          "overwrite": overwrite, "chunk": self.chunk},
            "schedule": (f"every {self.every} epoch(s)" + (f" to {self.epochs}" if self.epochs else "")
                         if self._log is None else f"{len(self._log)} log-spaced epochs of {self.epochs}"),
        }
        self.notes.insert(0, "watch: " + "; ".join(f"layer {d['layer']} = {d['name']} ({d['module']}, "
                                                   f"{'×'.join(map(str, d['output_shape'])) or 1})" for d in layers))
        self.sink = CsvSink(self.path, to_dict(self.sc), to_toml(self.sc),
                            {"device": describe(self.device), "monitor": monitor}, overwrite=overwrite)
        self._closed = False
        snaps = tuple(sorted(self._log)) if self._log is not None else (
            tuple(range(0, self.epochs + 1, self.every)) + ((self.epochs,) if self.epochs % self.every else ())
            if self.epochs else ())
        self.info = R.RunInfo(
            run=self.sc.name, scenario_path=WHO, device=describe(self.device), seeds=tuple(range(self.n_seeds)),
            epochs=self.epochs or 0, layers=tuple(str(j + 1) for j in range(len(self.layer_names))),
            layer_widths=tuple(self.widths), n_points=int(self.x.shape[0]), mi_points="the watch inputs",
            estimators=tuple(self.estimator_settings), estimator_settings=self.estimator_settings,
            noise_levels=(0.0,), notes=tuple(self.notes), snapshot_epochs=snaps,
            estimator_points=subset_points(self.probes, int(self.x.shape[0])))
        self.sink.start(self.info)

    def _param_name(self, w) -> str:
        return next((n for n, p in self.models[0].named_parameters() if p is w), "?")

    # ------------------------------------------------------------------ the user's calls
    def step(self, loss=None, batch_size: int | None = None) -> None:
        """After each optimiser step: counts the step, reads the watched weights' gradients when the next snapshot's
        window holds this step, and adds `loss` (a tensor or number; a list, one a model) to the epoch's mean
        training loss (weighted by `batch_size`). Nothing is copied to the host."""
        self._check_open()
        self.steps += 1
        if self.queue.pending:  # a snapshot the worker has finished goes to the export now, not at the next epoch
            self._emit(self.queue.ready())
        if self.steps % 256 == 0:  # the sidecar heartbeat (once a minute) in long epochs, for a viewer elsewhere
            self._progress()
        if loss is not None:
            weight = float(batch_size) if batch_size else 1.0
            losses = loss if isinstance(loss, (list, tuple)) else [loss] if self.n_seeds == 1 else loss
            for i in range(self.n_seeds):
                item = losses[i]
                value = item.detach() if hasattr(item, "detach") else float(item)
                self._loss_sum[i] = self._loss_sum[i] + value * weight
            self._loss_weight += weight
        if self.dynamics and self._window:
            import torch

            for flat, moments in zip(self.flat, self.moments):
                if flat:
                    moments.update([(w.grad if w.grad is not None else torch.zeros_like(w)).unsqueeze(0)
                                    for w in flat])

    def epoch(self, epoch: int, train_loss=None, test_loss=None, train_acc=None, test_acc=None) -> bool:
        """After `epoch` epochs (counted from 1; 0 is the initial network, measured by watch): measures a snapshot
        if the schedule says so, with the values given (a number, or a list with one a model; train_loss defaults
        to the mean of the losses given to step). Returns whether it measured."""
        self._check_open()
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch <= self.epoch_done:
            raise IbtuiError(f"{WHO}: epoch({epoch!r}) after epoch {self.epoch_done}; pass the number of epochs "
                             f"completed, increasing (epoch 0, the initial network, is measured by watch), e.g. "
                             f"mon.epoch(i + 1) in a loop over i from 0.")
        now = time.perf_counter()
        self._times["train_s"] += now - self._t_epoch
        self._times["trained"] += epoch - self.epoch_done
        self.epoch_done = epoch
        due = self.due(epoch)
        if due:
            if train_loss is None and self._loss_weight:
                train_loss = [v / self._loss_weight for v in self._loss_sum]
            given = {"loss_train": train_loss, "loss_test": test_loss, "acc_train": train_acc, "acc_test": test_acc}
            self._snapshot(epoch, {k: v for k, v in given.items() if v is not None})
            self._times["measure_s"] += time.perf_counter() - now
            self._times["measured"] += 1
        self._emit(self.queue.ready())
        self._loss_sum, self._loss_weight = [0.0] * self.n_seeds, 0.0
        self._start_window(epoch + 1)
        self._progress()
        self._t_epoch = time.perf_counter()
        return due

    @contextmanager
    def snapshot(self, epoch: int) -> Iterator[_Due]:
        """`with mon.snapshot(epoch) as snap:` … `if snap.due: snap.test_acc = evaluate()`: `epoch(epoch, …)` with
        the values set in the block, so an evaluation runs only at the epochs measured."""
        snap = _Due(self.due(epoch))
        yield snap
        self.epoch(epoch, train_loss=snap.train_loss, test_loss=snap.test_loss, train_acc=snap.train_acc,
                   test_acc=snap.test_acc)

    def close(self, finished: bool = True) -> None:
        """Wait for the snapshots still being measured, write them, and mark the export finished (or not)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._emit(self.queue.drain())
        except BaseException:
            self.sink.close(False)
            self.queue.close()
            raise
        self.sink.close(finished)
        self.queue.close()

    def __enter__(self) -> "Monitor":
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if kind is None:
            self.close(True)
        elif not self._closed:  # the user's loop failed: keep what is measured, the sidecar says unfinished
            self._closed = True
            self.queue.close()
            self.sink.close(False)

    def __repr__(self) -> str:
        return (f"Monitor({self.path}: {self.n_seeds} model(s), layers {self.layer_names}, estimators "
                f"{list(self.sc.measure.estimators)}, epoch {self.epoch_done}, step {self.steps})")

    # ------------------------------------------------------------------ snapshots
    def _check_open(self) -> None:
        if self._closed:
            raise IbtuiError(f"{WHO}: the monitor of {self.path} is closed; start a new one with ibtui.watch.")

    def _start_window(self, next_epoch: int) -> None:
        """The steps until the next epoch() are the SNR window of a snapshot when that epoch is one."""
        if self.dynamics:
            self._window = self.due(next_epoch)
            if self._window:
                for m in self.moments:
                    m.reset()

    def _capture(self) -> list:
        """The watched layers' outputs on every input, per model: [S, N, d_l] float32 on the model's device."""
        import torch

        n = self.x.shape[0]
        bufs = [torch.empty((self.n_seeds, n, d), dtype=torch.float32, device=self.device) for d in self.widths]
        at = [0, 0]  # (model, first input of the chunk)

        def hook_for(j: int):
            def hook(module, args, out):
                t = self._first_tensor(out, self.layer_names[j])
                s, start = at
                bufs[j][s, start:start + t.shape[0]].copy_(t.detach().reshape(t.shape[0], -1))
            return hook

        with self._quiet(), torch.no_grad():
            for s, model in enumerate(self.models):
                at[0] = s
                handles = [m.register_forward_hook(hook_for(j)) for j, m in enumerate(self.modules[s])]
                try:
                    for start in range(0, n, self.chunk):
                        at[1] = start
                        model(self.x[start:start + self.chunk])
                finally:
                    for h in handles:
                        h.remove()
        return bufs

    def _snapshot(self, epoch: int, given: dict) -> None:
        """Now, on the user's thread: the forward pass with hooks, the dynamics (they read the weights and the
        window's gradients) and each probe's `start`. On the measuring worker: the estimators' sums."""
        import torch

        from ibtui import quantities as Q
        from ibtui.engine.snapshot import Snapshot

        layers = self._capture()
        losses = {("", q, ""): self._per_seed(v, q) for q, v in given.items()}
        dynamics = self._dynamics(epoch)
        if ("", Q.LOSS_TEST, "") in losses and ("", Q.LOSS_TRAIN, "") in losses:
            dynamics[("", Q.GEN_GAP, "")] = losses[("", Q.LOSS_TEST, "")] - losses[("", Q.LOSS_TRAIN, "")]
        if ("", Q.ACC_TEST, "") in losses and ("", Q.ACC_TRAIN, "") in losses:
            dynamics[("", Q.ERROR_GAP, "")] = losses[("", Q.ACC_TRAIN, "")] - losses[("", Q.ACC_TEST, "")]
        finite = torch.stack([torch.isfinite(h).flatten(1).all(1) for h in layers]).all(0)
        if ("", Q.LOSS_TRAIN, "") in losses:
            finite &= torch.isfinite(losses[("", Q.LOSS_TRAIN, "")])
        if not bool(finite.all()):  # a diverged seed's rows are dropped; its NaNs must not upset the estimators
            layers = [torch.nan_to_num(h, nan=0.0, posinf=0.0, neginf=0.0) for h in layers]
        snap = Snapshot(epoch, 0.0, layers, list(self.activations), self.y, None, x_ids=self.x_ids, losses=losses)
        started = [probe.start(snap) for probe in self.probes]
        step = self.steps

        def finish():
            with torch.no_grad():  # grad mode is per thread
                values = dict(losses)
                for rest in started:
                    values.update(rest(snap))
                values.update(dynamics)
                return epoch, step, values, finite.cpu()

        self._emit(self.queue.submit(finish, sum(h.numel() * 4 for h in layers)))

    def _per_seed(self, value, quantity: str):
        import torch

        if isinstance(value, (list, tuple)):
            if len(value) != self.n_seeds:
                raise IbtuiError(f"{WHO}: {quantity} has {len(value)} values for {self.n_seeds} models; pass one a "
                                 f"model.")
            parts = [v.detach().reshape(()).float().to(self.device) if isinstance(v, torch.Tensor)
                     else torch.tensor(float(v), device=self.device) for v in value]
            return torch.stack(parts)
        if isinstance(value, torch.Tensor):
            v = value.detach().float().to(self.device).reshape(-1)
            if v.numel() not in (1, self.n_seeds):
                raise IbtuiError(f"{WHO}: {quantity} has {v.numel()} values for {self.n_seeds} models; pass one a "
                                 f"model.")
            return v.expand(self.n_seeds).clone()
        try:
            return torch.full((self.n_seeds,), float(value), device=self.device)
        except (TypeError, ValueError):
            raise IbtuiError(f"{WHO}: {quantity} = {value!r} is not a number; pass a number or a tensor.") from None

    def _dynamics(self, epoch: int) -> dict:
        """Gradient mean, std and SNR of the window, weight norm and change, transition and phase, per layer [S]."""
        import torch

        from ibtui import quantities as Q
        from ibtui.measures.gradients import weight_norms

        if not self.dynamics:
            return {}
        n_layers = len(self.layer_names)
        nan = torch.full((n_layers,), math.nan, device=self.device)
        means, stds, norms, changes = [], [], [], []
        for s in range(self.n_seeds):
            groups, flat = self.groups[s], self.flat[s]
            if flat and self._window and self.moments[s].count > 0 and epoch > 0:
                summary = self.moments[s].summary()
                means.append(_combine(summary[Q.GRAD_MEAN][0], groups, nan))
                stds.append(_combine(summary[Q.GRAD_STD][0], groups, nan))
            else:
                means.append(nan)
                stds.append(nan)
            if flat:
                w = weight_norms([p.detach().unsqueeze(0) for p in flat], [p.unsqueeze(0) for p in self.w0[s]])
                norms.append(_combine(w["weight_norm"][0], groups, nan))
                changes.append(_combine(w["weight_change"][0], groups, nan))
            else:
                norms.append(nan)
                changes.append(nan)
        mean, std = torch.stack(means).float(), torch.stack(stds).float()
        snr = mean / std
        if epoch > 0:
            self.detector.update(epoch, snr)
        shown = {Q.GRAD_MEAN: mean, Q.GRAD_STD: std,
                 Q.SNR: snr.square() if self.sc.measure.dynamics.snr == "squared" else snr,
                 Q.WEIGHT_NORM: torch.stack(norms).float(), Q.WEIGHT_CHANGE: torch.stack(changes).float(),
                 Q.TRANSITION_EPOCH: self.detector.epoch.float(), Q.PHASE: self.detector.in_diffusion(epoch).float()}
        return {(str(j + 1), q, ""): table[:, j] for q, table in shown.items() for j in range(n_layers)}

    def _emit(self, results: list) -> None:
        from ibtui.engine.trainer import seed_records

        for epoch, step, values, finite in results:
            records, self.alive = seed_records(values, self.alive, finite, list(range(self.n_seeds)), self.sc.name,
                                               "", epoch, step)
            self.sink.emit(records)

    def _progress(self) -> None:
        from ibtui import records as R

        total = max(self.epochs or 0, self.epoch_done)
        snaps = self.info.snapshot_epochs
        self.sink.progress(R.Progress(self.epoch_done, total, int(self.alive.sum()), 0.0,
                                      sum(1 for e in snaps if e <= self.epoch_done), len(snaps), **self._times,
                                      measuring=self.queue.in_flight, measure_job_s=self.queue.job_s))


def _combine(per_tensor, groups: list[list[int]], nan):
    """Per-tensor norms [T] → per-layer norms [L] of the layer's tensors taken as one vector: √Σ (norm²); a layer
    without weights NaN. (‖ḡ‖ and √tr Cov of a concatenation add in squares.)"""
    import torch

    out = [per_tensor[g].square().sum().sqrt() if g else nan[0] for g in groups]
    return torch.stack(out)
