"""Device choice: `auto` takes CUDA when present; asking for CUDA without it is bad input, not a crash."""
from __future__ import annotations

import torch

from ibtui.errors import ScenarioError
from ibtui.scenario import check_device


def resolve_device(name: str, origin: str = "run.device") -> torch.device:
    check_device(name, origin)
    name = name.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ScenarioError(f"{origin} = {name!r} but this machine has no usable CUDA device "
                                f"(torch {torch.__version__}); use --device cpu or auto.")
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ScenarioError(f"{origin} = {name!r} but only {torch.cuda.device_count()} CUDA device(s) exist; "
                                f"use cuda:0 … cuda:{torch.cuda.device_count() - 1}.")
        return dev


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)
