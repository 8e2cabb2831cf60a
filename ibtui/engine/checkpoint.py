"""Checkpoints: everything a run needs to continue exactly, as tensors and plain data only.

A run's numbers depend on its state at an epoch boundary and nothing else: batch orders and the network's
noise come from counters (`ibtui.engine.rng`), so the state is the weights, the optimiser's moments, the
epoch and step counters, the learning rate, the noise level chosen with `n`, which seeds are alive, and what
the probes accumulate (the dynamics probe's SNR window, transition detector and the Gaussian bound's W*).
Objects with state list it in a class attribute `_state_attrs`; `capture` and `restore` walk those.

The file is written with `torch.save` and read with `torch.load(weights_only=True)`, whose unpickler admits
only tensors, numbers, strings and containers: a crafted file cannot run code, it is refused.
"""
from __future__ import annotations

import math
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from ibtui.errors import IbtuiError
from ibtui.files import AtomicFile

FORMAT = "ibtui-checkpoint-v1"


def capture(obj: Any) -> Any:
    """A copy of `obj`'s state: tensors cloned, containers and plain values copied, stateful objects as dicts."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if hasattr(obj, "_state_attrs"):
        return {name: capture(getattr(obj, name)) for name in obj._state_attrs}
    if isinstance(obj, (list, tuple)):
        return type(obj)(capture(v) for v in obj)
    if isinstance(obj, dict):
        return {k: capture(v) for k, v in obj.items()}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot checkpoint a {type(obj).__name__}")


def restore(obj: Any, state: dict, device: torch.device) -> None:
    """Put a `capture`d state back into a stateful object built the same way (tensors moved to `device`)."""
    for name in obj._state_attrs:
        current = getattr(obj, name)
        if hasattr(current, "_state_attrs"):
            restore(current, state[name], device)
        else:
            setattr(obj, name, _to_device(state[name], device))


def _to_device(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, (list, tuple)):
        return type(value)(_to_device(v, device) for v in value)
    if isinstance(value, dict):
        return {k: _to_device(v, device) for k, v in value.items()}
    return value


def save(path: Path, payload: dict) -> None:
    """Write `payload` atomically (`files.AtomicFile`: an exclusively created temporary file beside it, never
    through a link, synced, then renamed); a failure leaves the previous checkpoint as it was."""
    with AtomicFile(path) as f:
        torch.save(payload, f)


def load(path: Path) -> dict:
    """Read a checkpoint; anything but a readable ibtui checkpoint of tensors and plain data is one sentence."""
    if not path.is_file():
        raise IbtuiError(f"{path}: no checkpoint beside the export (the run stopped before its first "
                         f"checkpoint, or run.checkpoint_every = 0); start the run again.")
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise IbtuiError(f"{path}: cannot read the checkpoint ({exc.strerror or exc}); make it readable, or start "
                         f"the run again.") from None
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickle protocols: the refusal below says it all
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # the safe unpickler's refusals, and any fault of a damaged file (KeyError, …)
        unsafe = isinstance(exc, pickle.UnpicklingError) or "weights only" in str(exc).lower()
        if not magic.startswith((b"PK\x03\x04", b"\x80")):  # neither torch.save's zip nor a pickle
            why = "it is not a checkpoint file at all (a text file, or another kind of file)"
        elif unsafe:
            why = "it holds objects other than tensors and plain data, which ibtui never unpickles"
        else:
            why = "it is damaged or not a checkpoint (truncated, or another kind of file)"
        raise IbtuiError(f"{path}: not a readable ibtui checkpoint: {why}; it was not loaded and no code in it "
                         f"ran. Start the run again or restore the file.") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise IbtuiError(f"{path}: not an ibtui checkpoint (format {FORMAT} expected); start the run again.")
    return payload


# ---------------------------------------------------------------------------------------------- the schema
# A checkpoint's contents decide what `ibtui resume` cuts from the export and what training continues from, so
# every field is checked before anything is touched (a crafted one must not cut the export to 0 bytes, feed a
# wrongly shaped Adam state to a fused kernel, or make a wrong export that says it finished): `check` reads the
# fields the export depends on, against the scenario the checkpoint names and the export itself; `check_state`
# reads the engine's state against an engine built from that scenario (`Engine.load_state_dict` calls it first).

class Bad(IbtuiError):
    """A checkpoint field that does not fit: `field` and what is wrong, made into one sentence by `refusal`."""

    def __init__(self, field: str, what: str):
        super().__init__(f"{field} {what}")
        self.field, self.what = field, what


def refusal(path: Path, bad: Bad) -> IbtuiError:
    return IbtuiError(f"{path}: not a checkpoint of this export ({bad.field} {bad.what}); nothing was changed, "
                      f"start the run again or restore the file.")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _int(v: Any, field: str, lo: int, hi: int | None = None) -> int:
    if not _is_int(v):
        raise Bad(field, f"is {type(v).__name__}, not an integer")
    if v < lo or (hi is not None and v > hi):
        raise Bad(field, f"= {v} is outside {lo}…{'' if hi is None else hi}")
    return v


def _keys(v: Any, field: str, keys) -> dict:
    if not isinstance(v, dict):
        raise Bad(field, f"is {type(v).__name__}, not a table")
    if set(v) != set(keys):
        missing, extra = sorted(map(str, set(keys) - set(v))), sorted(map(str, set(v) - set(keys)))
        raise Bad(field, ("lacks " + ", ".join(missing[:3])) if missing else ("has unknown " + ", ".join(extra[:3])))
    return v


HEAD_KEYS = ("format", "ibtui", "scenario_toml", "run_id", "csv_bytes", "rows", "last_epoch", "epoch", "saved",
             "runner")


def check(ck: dict, path: Path, csv_path: Path):
    """The scenario of checkpoint `ck` (read from `path`) for resuming the export `csv_path`, once every field the
    export and the run's position depend on fits: csv_bytes within the export, after its header (which must be
    ibtui's) and on a row boundary; rows the rows before it; the epochs within the run; the sweep point among the
    scenario's. Raises IbtuiError (one sentence) otherwise. Reads the export; writes nothing."""
    from ibtui.records import FIELDS
    from ibtui.scenario import parse_scenario, sweep_point

    try:
        _keys(ck, "the checkpoint", HEAD_KEYS)
        for name in ("format", "ibtui", "scenario_toml", "run_id", "saved"):
            if not isinstance(ck[name], str):
                raise Bad(name, f"is {type(ck[name]).__name__}, not text")
        sc = parse_scenario(ck["scenario_toml"], origin=f"{path} (its scenario)")
        points = [sweep_point(sc, v) for v in sc.sweep.values] if sc.sweep.setting else [sc]
        runner = _keys(ck["runner"], "runner", ("point", "engine"))
        point = _int(runner["point"], "runner.point", 0, len(points) - 1)
        engine = ck["runner"]["engine"]
        if not isinstance(engine, dict):
            raise Bad("runner.engine", f"is {type(engine).__name__}, not a table")
        epochs = points[point].run.epochs
        epoch = _int(ck["epoch"], "epoch", 0, epochs)
        if engine.get("epoch") != epoch or not _is_int(engine.get("epoch")):
            raise Bad("runner.engine.epoch", f"= {engine.get('epoch')!r} differs from epoch = {epoch}")
        rows = _int(ck["rows"], "rows", 0)
        if ck["last_epoch"] is not None or rows:  # None only before the first record; a fraction inside an epoch
            last = ck["last_epoch"]
            if not (_is_num(last) and 0 <= last <= epoch):
                raise Bad("last_epoch", f"= {last!r} is not an epoch from 0 to {epoch}")
        _check_csv(ck["csv_bytes"], rows, csv_path, (",".join(FIELDS) + "\n").encode())
    except Bad as bad:
        raise refusal(path, bad) from None
    return sc


def _check_csv(size: Any, rows: int, csv_path: Path, header: bytes) -> None:
    """csv_bytes: an integer within the export, ending a whole row after ibtui's header, with `rows` rows before."""
    have = csv_path.stat().st_size
    if _is_int(size) and size > have:
        raise IbtuiError(f"{csv_path}: shorter ({have} bytes) than its checkpoint records ({size} bytes): the export "
                         f"was changed since; start the run again.")
    size = _int(size, "csv_bytes", len(header))
    newlines = quotes = 0
    with open(csv_path, "rb") as f:
        if f.read(len(header)) != header:
            raise IbtuiError(f"{csv_path}: its header is not the one ibtui writes, so it is not the export this "
                             f"checkpoint belongs to (it was replaced); nothing was changed, start the run again.")
        left, last = size - len(header), b"\n"
        while left:
            chunk = f.read(min(left, 1 << 20))
            if not chunk:
                break
            newlines += chunk.count(b"\n")
            quotes += chunk.count(b'"')
            left -= len(chunk)
            last = chunk[-1:]
    if last != b"\n" or quotes % 2:
        raise Bad("csv_bytes", f"= {size} ends in the middle of a row of {csv_path.name}")
    if rows != newlines if not quotes else rows > newlines:
        raise Bad("rows", f"= {rows}, but the first {size} bytes of {csv_path.name} hold {newlines} rows")


def _like(v: Any, t: Any, field: str, grows: bool = False) -> None:
    """`v` has the type of `t`, and as a tensor its dtype and shape (the last dimension free where it `grows`)."""
    if isinstance(t, torch.Tensor):
        if not isinstance(v, torch.Tensor):
            raise Bad(field, f"is {type(v).__name__}, not a tensor")
        if v.dtype != t.dtype:
            raise Bad(field, f"is {v.dtype}, not {t.dtype}")
        if v.shape != t.shape and not (grows and v.dim() == t.dim() and v.shape[:-1] == t.shape[:-1]):
            raise Bad(field, f"has shape {tuple(v.shape)}, not {tuple(t.shape)}")
        if v.is_sparse or v.layout != torch.strided or v.is_quantized or v.is_meta:
            raise Bad(field, "is not a plain dense tensor")
    elif isinstance(t, dict):
        _keys(v, field, t)
        for k in t:
            _like(v[k], t[k], f"{field}.{k}")
    elif isinstance(t, (list, tuple)):
        if type(v) is not type(t):
            raise Bad(field, f"is {type(v).__name__}, not a {type(t).__name__}")
        if t:
            if len(v) != len(t):
                raise Bad(field, f"has {len(v)} items, not {len(t)}")
            for i, (a, b) in enumerate(zip(v, t)):
                _like(a, b, f"{field}[{i}]")
        else:  # what a probe accumulates during the run (empty at its start): plain data, finite numbers
            for i, a in enumerate(v):
                _plain(a, f"{field}[{i}]")
    elif t is None:
        _plain(v, field)
    elif isinstance(t, bool):
        if not isinstance(v, bool):
            raise Bad(field, f"is {type(v).__name__}, not true or false")
    elif _is_num(t):
        if not _is_num(v) or (isinstance(t, int) and not _is_int(v)):
            raise Bad(field, f"is {type(v).__name__}, not a {type(t).__name__}")
    elif type(v) is not type(t):
        raise Bad(field, f"is {type(v).__name__}, not {type(t).__name__}")


def _plain(v: Any, field: str, depth: int = 0) -> None:
    if depth > 8:
        raise Bad(field, "is nested too deeply")
    if isinstance(v, torch.Tensor):
        if v.is_sparse or v.layout != torch.strided or v.is_quantized or v.is_meta:
            raise Bad(field, "is not a plain dense tensor")
    elif isinstance(v, (list, tuple)):
        for i, a in enumerate(v):
            _plain(a, f"{field}[{i}]", depth + 1)
    elif isinstance(v, dict):
        for k, a in v.items():
            _plain(a, f"{field}.{k}", depth + 1)
    elif _is_num(v):
        if not math.isfinite(v):
            raise Bad(field, f"= {v} is not a finite number")
    elif v is not None and not isinstance(v, (bool, str)):
        raise Bad(field, f"is {type(v).__name__}")


def _object(v: Any, obj: Any, field: str, run: dict) -> None:
    """A probe's or regularizer's state: its `_state_attrs`, each like the object's own (the capacity of what
    grows, `_state_grows`, free), then what the object accumulates during the run (`_ACCUMULATES`)."""
    _keys(v, field, obj._state_attrs)
    grows = getattr(obj, "_state_grows", ())
    for name in obj._state_attrs:
        current = getattr(obj, name)
        if hasattr(current, "_state_attrs"):
            _object(v[name], current, f"{field}.{name}", run)
        else:
            _like(v[name], capture(current), f"{field}.{name}", grows=name in grows)
    for kind, rule in _ACCUMULATES.items():
        if type(obj).__name__ == kind:
            rule(v, obj, field, run)


def _weights_like(v: Any, field: str, weights: list) -> None:
    """A list with one tensor a weight matrix, of its shape and dtype (the dynamics probe's copies of the weights)."""
    if not isinstance(v, list) or len(v) != len(weights):
        raise Bad(field, f"is not a list of {len(weights)} weight matrices")
    for i, (a, w) in enumerate(zip(v, weights)):
        _like(a, w, f"{field}[{i}]")


def _moments(v: dict, obj: Any, field: str, run: dict) -> None:
    """GradientMoments: `count` mini-batches summed so far (of the steps made), and (once counting) one tensor a
    layer in each sum."""
    count = _int(v["count"], f"{field}.count", 0, run["step"])
    for name in ("_shift", "_sum", "_sumsq"):
        if count or v[name]:
            _weights_like(v[name], f"{field}.{name}",
                          [torch.empty(w.shape, dtype=obj.dtype, device="meta") for w in run["weights"]])


def _detector(v: dict, obj: Any, field: str, run: dict) -> None:
    """TransitionDetector: increasing snapshot epochs > 0, their log10, the smoothing fits completed so far, and
    at least one column a snapshot (completed fit) in each growing table."""
    epochs, x = v["_epochs"], v["_x"]
    if len(x) != len(epochs):
        raise Bad(f"{field}._x", f"has {len(x)} items, not one an epoch ({len(epochs)})")
    for i, e in enumerate(epochs):
        if not _is_num(e) or not 0 < e <= run["epoch"] or (i and e <= epochs[i - 1]):
            raise Bad(f"{field}._epochs[{i}]", f"= {e!r} is not an epoch of the run after the one before")
        if not _is_num(x[i]) or abs(x[i] - math.log10(e)) > 1e-9:
            raise Bad(f"{field}._x[{i}]", f"= {x[i]!r} is not log10 of its epoch {e}")
    done = _int(v["_n_complete"], f"{field}._n_complete", 0, len(epochs))
    for name, need in (("_y", len(epochs)), ("_slope", done), ("_level", done), ("_lev_var", done)):
        if v[name].shape[-1] < need:
            raise Bad(f"{field}.{name}", f"has {v[name].shape[-1]} columns, fewer than the {need} it holds")


def _bound(v: dict, obj: Any, field: str, run: dict) -> None:
    """BoundWindow: W* (a copy of the weights) with σ_T² and the frozen epochs [S, L], all three or none, and the
    buffered snapshots (epoch, weights, σ_T²)."""
    table = torch.empty(obj.shape, dtype=torch.float64, device="meta")
    if (v["w_star"] is None) != (v["sigma_t2"] is None) or (v["w_star"] is None) != (v["frozen_epoch"] is None):
        raise Bad(f"{field}.w_star", "and sigma_t2, frozen_epoch are not set together")
    weights = run["matrices"]  # the weights as the bound's [S, d_in, d_out] matrices (dynamics.as_matrix)
    if weights is None and (v["w_star"] is not None or v["_buffer"]):
        raise Bad(f"{field}.w_star", "is set, but a layer of this model has no matrix form")
    if v["w_star"] is not None:
        _weights_like(v["w_star"], f"{field}.w_star", weights)
        _like(v["sigma_t2"], table, f"{field}.sigma_t2")
        _like(v["frozen_epoch"], table, f"{field}.frozen_epoch")
    if not isinstance(v["_buffer"], list):
        raise Bad(f"{field}._buffer", "is not a list")
    for i, entry in enumerate(v["_buffer"]):
        where = f"{field}._buffer[{i}]"
        if not isinstance(entry, tuple) or len(entry) != 3 or not _is_num(entry[0]):
            raise Bad(where, "is not (epoch, weights, σ_T²)")
        if not 0 <= entry[0] <= run["epoch"] or (i and entry[0] <= v["_buffer"][i - 1][0]):
            raise Bad(f"{where}[0]", f"= {entry[0]!r} is not an epoch of the run after the one before")
        _weights_like(entry[1], f"{where}[1]", weights)
        _like(entry[2], table, f"{where}[2]")


def _dynamics(v: dict, obj: Any, field: str, run: dict) -> None:
    """DynamicsProbe: the snapshot epoch whose window the moments hold (one of its windows), or none yet."""
    if v["_window"] is not None and (not _is_num(v["_window"]) or v["_window"] not in {w[2] for w in obj.windows}):
        raise Bad(f"{field}._window", f"= {v['_window']!r} is not the epoch of one of the probe's windows")


_ACCUMULATES = {"GradientMoments": _moments, "TransitionDetector": _detector, "BoundWindow": _bound,
                "DynamicsProbe": _dynamics}


def _optimizer_state(opt: torch.optim.Optimizer) -> dict:
    """What `opt`'s per-parameter state looks like once it has stepped: one step of a copy on zero gradients."""
    groups = []
    for g in opt.param_groups:
        params = [torch.zeros_like(p, requires_grad=True) for p in g["params"]]
        for p in params:
            p.grad = torch.zeros_like(p)
        groups.append({**{k: v for k, v in g.items() if k != "params"}, "params": params})
    copy = type(opt)(groups)
    copy.step()
    return copy.state_dict()["state"]


def _optimizer(v: Any, opt: torch.optim.Optimizer, field: str) -> None:
    t = opt.state_dict()
    _keys(v, field, t)
    groups = v["param_groups"]
    if not isinstance(groups, list) or len(groups) != len(t["param_groups"]):
        raise Bad(f"{field}.param_groups", f"is not a list of {len(t['param_groups'])}")
    for i, (g, tg) in enumerate(zip(groups, t["param_groups"])):
        where = f"{field}.param_groups[{i}]"
        _keys(g, where, tg)
        if not isinstance(g["params"], list) or any(not _is_int(x) for x in g["params"]) or g["params"] != tg["params"]:
            raise Bad(f"{where}.params", "are not the model's parameters")
        for k, tv in tg.items():
            if k == "params":
                continue
            if tv is None or isinstance(tv, bool):  # foreach/fused/…: None or a flag
                if g[k] is not None and not isinstance(g[k], bool):
                    raise Bad(f"{where}.{k}", f"is {type(g[k]).__name__}, not true, false or none")
            else:
                _like(g[k], tv, f"{where}.{k}")
                for x in (g[k] if isinstance(g[k], tuple) else (g[k],)):
                    if _is_num(x) and (not math.isfinite(x) or x < 0):
                        raise Bad(f"{where}.{k}", f"= {g[k]} is not a finite number ≥ 0")
    state = v["state"]
    if not isinstance(state, dict):
        raise Bad(f"{field}.state", f"is {type(state).__name__}, not a table")
    if state:
        template = _optimizer_state(opt)
        _keys(state, f"{field}.state", template)
        for k, entry in state.items():
            _like(entry, template[k], f"{field}.state[{k}]")
            for name, x in entry.items():
                if name == "step" and not (bool(torch.isfinite(torch.as_tensor(x)).all()) and float(x) >= 0):
                    raise Bad(f"{field}.state[{k}].step", f"= {float(x)} is not a finite count ≥ 0")


def check_state(engine: Any, state: Any) -> None:
    """Raise `Bad` unless `state` is a state of `engine` (an Engine built from the checkpoint's scenario): the
    counters within the run, the learning rate the schedule gives, `alive` one flag a seed, the weights, the
    optimiser's state and every probe's as the engine's own (type, dtype, shape)."""
    t = engine.state_dict()
    if isinstance(state, dict) and "kde_path" not in state:  # a checkpoint from before measure.kde.path
        t.pop("kde_path", None)
    _keys(state, "runner.engine", t)
    field = "runner.engine"
    if state.get("kde_path", "") not in ("", "compiled", "pytorch", "attention", "pairwise"):
        raise Bad(f"{field}.kde_path", f"= {state['kde_path']!r} is not a KDE path (compiled, pytorch, attention, "
                                       "pairwise)")
    epoch = _int(state["epoch"], f"{field}.epoch", 0, engine.sc.run.epochs)
    step = _int(state["step"], f"{field}.step", 0)
    if step != epoch * engine.steps_per_epoch:
        raise Bad(f"{field}.step", f"= {step} is not epoch × steps a epoch = {epoch * engine.steps_per_epoch}")
    _int(state["noise_index"], f"{field}.noise_index", 0, len(engine.sc.model.noise_levels) - 1)
    lr = state["lr"]
    if not _is_num(lr) or lr not in {engine._lr_of(max(step - 1, 0)), engine._lr_of(step)}:
        raise Bad(f"{field}.lr", f"= {lr!r} is not the learning rate of step {step} (train.lr, train.lr_milestones)")
    _like(state["alive"], t["alive"], f"{field}.alive")
    _like(state["model"], t["model"], f"{field}.model")
    _optimizer(state["optimizer"], engine.optimizer, f"{field}.optimizer")
    from ibtui.engine.probes.dynamics import as_matrix

    weights = [w.detach() for w in engine.model.weight_matrices()] if hasattr(engine.model, "weight_matrices") else []
    matrices = [as_matrix(w) for w in weights]
    run = {"step": step, "epoch": epoch, "weights": weights,
           "matrices": None if any(m is None for m in matrices) else matrices}
    for name, objs in (("probes", engine.probes), ("regularizers", engine.regularizers)):
        v = state[name]
        if not isinstance(v, list) or len(v) != len(objs):
            raise Bad(f"{field}.{name}", f"is not a list of {len(objs)}")
        for i, (a, obj) in enumerate(zip(v, objs)):
            _object(a, obj, f"{field}.{name}[{i}]", run)
    for k in set(t) - {"epoch", "step", "noise_index", "lr", "alive", "model", "optimizer", "probes", "regularizers"}:
        _like(state[k], t[k], f"{field}.{k}")  # any other field: the engine's own type
