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
        with warnings.catch_warnings():  # torch warns about foreign pickle protocols: the refusal below says it all
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, AttributeError, TypeError) as exc:
        unsafe = isinstance(exc, pickle.UnpicklingError) or "weights only" in str(exc).lower()
        why = ("it holds objects other than tensors and plain data, which ibtui never unpickles" if unsafe else
               "it is damaged or not a checkpoint (truncated, or another kind of file)")
        raise IbtuiError(f"{path}: not a readable ibtui checkpoint: {why}; it was not loaded and no code in it "
                         f"ran. Start the run again or restore the file.") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise IbtuiError(f"{path}: not an ibtui checkpoint (format {FORMAT} expected); start the run again.")
    return payload
