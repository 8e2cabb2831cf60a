"""Schedules: when to take snapshots (log-spaced epochs, so the fast fitting phase gets as many points as the
long tail) and the learning rate of each optimiser step.

Epoch e means "after e completed epochs"; epoch 0 is the network at initialisation. With
measure.snapshot_unit = "step" the same spacing runs over optimiser steps instead (image runs: Shwartz-Ziv,
Painsky & Tishby 2019 plot against iterations, and their transitions fall at ~10^2–10^4 iterations, inside
the first epochs of a 400-step-an-epoch run), so snapshots may fall inside an epoch.
IDNNs used np.unique(np.logspace(0, log2(E), K, base=2)) (274 unique epochs of 400 asked in 8000).
"""
from __future__ import annotations

import bisect

import numpy as np


def _epochs(epochs: int, num: int, schedule: str) -> list[int]:
    if schedule == "log":
        pts = np.logspace(0.0, np.log10(max(epochs, 1)), num=max(num, 1))
    elif schedule == "linear":
        pts = np.linspace(0.0, epochs, num=max(num, 2))
    else:
        raise ValueError(f"unknown schedule {schedule!r}")
    return sorted({0, epochs} | {int(round(p)) for p in pts if 0 <= round(p) <= epochs})


def snapshot_epochs(epochs: int, count: int, schedule: str = "log") -> list[int]:
    """Sorted unique snapshot epochs in 0..epochs, always including 0 and the last epoch.

    Rounding log-spaced points merges the early ones, so the number of points asked of the spacing
    is raised until `count` distinct epochs result (or every epoch is a snapshot).
    """
    if count >= epochs + 1:
        return list(range(epochs + 1))
    lo, hi = count, 64 * count + epochs
    while lo < hi:  # smallest num giving at least `count` distinct epochs
        mid = (lo + hi) // 2
        if len(_epochs(epochs, mid, schedule)) >= count:
            hi = mid
        else:
            lo = mid + 1
    return _epochs(epochs, lo, schedule)


def snapshot_steps(epochs: int, steps_per_epoch: int, count: int, schedule: str = "log", unit: str = "epoch"
                   ) -> list[int]:
    """The optimiser steps after which snapshots are taken, sorted, 0 and the last step included: the snapshot
    epochs × steps_per_epoch (unit "epoch"), or `snapshot_epochs` over the run's steps (unit "step": steps
    1, 2, 3, … come first, so the first ten iterations are measured)."""
    if unit == "step":
        return snapshot_epochs(epochs * steps_per_epoch, count, schedule)
    if unit != "epoch":
        raise ValueError(f"unknown snapshot unit {unit!r}")
    return [e * steps_per_epoch for e in snapshot_epochs(epochs, count, schedule)]


def learning_rate(step: int, lr: float, milestones: list[int], decay: float) -> float:
    """The learning rate of optimiser step `step` (counted from 0 over the run): lr·decay^k, k = the number of
    milestones ≤ step. He et al. (2016): milestones [32000, 48000], decay 0.1 (lr ÷ 10 after 32k and 48k steps)."""
    if not milestones:  # the common case, asked every step
        return lr
    k = bisect.bisect_right(sorted(milestones), step)
    return lr * decay**k if k else lr
