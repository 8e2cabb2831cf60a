"""Will the run fit? A lower bound on the memory a scenario needs, compared with what the device has, before
anything is allocated (so `--set run.seeds=1000000000` is one sentence, not a MemoryError minutes later).

The estimate counts what every run certainly holds: per seed, the parameters with their gradients and
optimiser state; the activations of every measured point at a snapshot (all seeds at once); a training
batch's activations; and SP's noisy copies. It is a lower bound (frameworks add more), so a refusal is
certain to be right; a run that passes may still run out, which the CLI then ends like an interrupt.
Torch-free except `available_bytes` on a CUDA device.
"""
from __future__ import annotations

import errno
import math
import os

from ibtui.errors import IbtuiError

F32 = 4
GIB = 1 << 30
# data.dataset → points; image sets: their count depends on the files (often subsets), so 0 (not counted)
POINTS = {"szt": 4096, "saturation": 4, "boolean4": None}
CONV_PARAMS = {"cnn": 10_000, "resnet32": 460_000}  # lower bounds on a convolutional net's parameters


class ResourceError(IbtuiError):
    """The run cannot fit in the memory the device has."""


def _widths(sc) -> list[int]:
    return list(sc.model.hidden[: sc.model.depth] if sc.model.depth else sc.model.hidden)


def estimate(sc) -> tuple[int, str]:
    """(bytes, what they are) that a run of `sc` needs at least."""
    from ibtui.scenario import DATA_SHAPES

    shape, classes = DATA_SHAPES.get(sc.data.dataset, ((1,), 2))
    features = math.prod(shape)
    n = POINTS.get(sc.data.dataset, 0)
    if n is None:
        n = sc.data.samples
    widths = _widths(sc)
    if sc.model.kind == "mlp":
        sizes = [features, *widths, classes]
        params = sum(a * b + b for a, b in zip(sizes, sizes[1:]))
    else:
        params = CONV_PARAMS.get(sc.model.kind, 0)
    copies = 2 + (2 if sc.train.optimizer == "adam" else (1 if sc.train.momentum else 0))
    copies += 1 if sc.measure.dynamics.enabled else 0  # the initial weights, for the weight change
    seeds = sc.run.seeds
    units = sum(widths) + classes
    measured = n if sc.data.mi_subset == 0 else min(n, sc.data.mi_subset)
    batch = min(sc.train.batch_size, n) if n else 0
    total = seeds * params * copies * F32
    total += seeds * measured * units * F32  # one snapshot's activations, all seeds at once
    total += seeds * batch * units * F32 * 2  # a training batch's activations and their gradients
    if "sp" in sc.measure.estimators and sc.model.kind == "mlp":
        pts = measured if sc.measure.sp.points == 0 else min(measured, sc.measure.sp.points)
        total += seeds * pts * sc.measure.sp.samples * max(widths, default=0) * F32
    for est in ("renyi", "ksg"):  # float64 n × n matrices: Rényi's Gram matrices, KSG's distances of the inputs
        if est in sc.measure.estimators:
            pts = measured if getattr(sc.measure, est).points == 0 else min(measured, getattr(sc.measure, est).points)
            total += (seeds + 1) * pts * pts * 2 * F32 * (3 if est == "renyi" else 1)
    what = f"{seeds:,} seeds × {params:,} parameters"
    if measured:
        what += f", {measured:,} measured points"
    return total, what


def available_bytes(device) -> tuple[int | None, str]:
    """(bytes free, where) on a torch device: CUDA free memory, or the CPU's available RAM (None if unknown)."""
    if getattr(device, "type", str(device)) == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        return int(free), f"{device} has"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "the CPU has"
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "the CPU has"
    except (OSError, ValueError, AttributeError):
        return None, "the CPU has"


def gib(n: float) -> str:
    return f"{n / GIB:,.1f} GiB" if n < 1e6 * GIB else f"{n / GIB:.1e} GiB"


def check_memory(scenarios, device) -> None:
    """ResourceError if the largest of `scenarios` (a run, or each point of a sweep) cannot fit on `device`."""
    need, what = max((estimate(s) for s in scenarios), key=lambda t: t[0])
    have, where = available_bytes(device)
    if have is None or need <= have:
        return
    raise ResourceError(f"this run needs at least {gib(need)} of memory ({what}) but {where} {gib(have)} "
                        f"available; use fewer seeds (run.seeds) or fewer measured points (data.mi_subset, "
                        f"measure.sp.points).")


def is_out_of_memory(exc: BaseException) -> bool:
    """An allocation failure: MemoryError, torch.OutOfMemoryError, or the CPU allocator's RuntimeError."""
    if isinstance(exc, MemoryError):
        return True
    if isinstance(exc, OSError):
        return exc.errno == errno.ENOMEM
    if type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("not enough memory" in text or "out of memory" in text)


__all__ = ["ResourceError", "estimate", "available_bytes", "check_memory", "is_out_of_memory"]
