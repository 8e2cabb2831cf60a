"""The probe base class and the helpers the probes share (labels shared by all seeds, fixed point subsets)."""
from __future__ import annotations

from typing import Callable

import torch

from ibtui.data.sampling import fixed_subset
from ibtui.engine.snapshot import Snapshot, Values


class Probe:
    """Base probe: no step hook, no estimator, nothing measured."""

    estimators: dict[str, str] = {}  # estimator label → one line describing its settings
    points: dict[str, int] = {}  # estimator label → points it keeps of the MI points (0 or absent: all)
    notes: tuple[str, ...] = ()
    watches_steps = False
    graph_safe = False  # True if after_step is pure device work that may be captured in a CUDA graph
    detached = False  # True if at_snapshot reads only the snapshot's activations and labels (no model, no step
    # state), so it may finish on a worker thread while training continues (ibtui.engine.overlap)
    _state_attrs: tuple[str, ...] = ()  # attributes a checkpoint keeps (what the probe accumulates over the run)

    def watches_epoch(self, epoch: int) -> bool:
        """Whether after_step must see the steps of this epoch (only asked when watches_steps)."""
        return self.watches_steps

    def after_step(self, step: int, epoch: int) -> None:
        """After the backward pass of optimiser step `step` (counted from 0 over the run), before the update."""

    def at_snapshot(self, snap: Snapshot) -> Values:
        return {}

    def start(self, snap: Snapshot) -> Callable[[Snapshot], Values]:
        """The snapshot's work split in two: what must happen now (what reads the model or the step state) and
        the rest, returned as a function of the finished snapshot (with `last_hidden_mi_xt` set) that may run
        on a worker thread while training continues (ibtui.engine.overlap). `at_snapshot` is both at once. A
        detached probe leaves all of its work for later, any other none of it (override to split)."""
        if self.detached:
            return self.at_snapshot
        values = self.at_snapshot(snap)
        return lambda final: values


def shared_labels(labels: torch.Tensor) -> torch.Tensor | None:
    """labels [n] → itself; [S, n] with identical rows → row 0; otherwise None (per-seed labels)."""
    if labels.dim() == 1:
        return labels
    return labels[0] if bool((labels == labels[:1]).all()) else None


def per_labels(fn, h: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """fn(h, labels [n]) → {name: Tensor[S]}, for all seeds in one call when they measure the same points,
    else one call per seed (a per-seed split gives each seed its own points and labels)."""
    shared = shared_labels(labels)
    if shared is not None:
        return fn(h, shared)
    parts = [fn(h[i:i + 1], labels[i]) for i in range(h.shape[0])]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def subset_of(snap: Snapshot, points: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The snapshot's layers and labels on a fixed random subset of `points` MI points (all when 0)."""
    keep = subset_indices(snap.layers[0].shape[1], points, snap.layers[0].device)
    if keep is None:
        return snap.layers, snap.labels
    return [h[:, keep] for h in snap.layers], snap.labels[..., keep]


def subset_points(probes, n_points: int) -> dict[str, int]:
    """Estimator label → the points it measures on, for estimators that keep fewer than the run's n_points."""
    return {label: int(k) for p in probes for label, k in getattr(p, "points", {}).items() if 0 < k < n_points}


def subset_indices(n: int, points: int, device: torch.device) -> torch.Tensor | None:
    """A fixed random subset of `points` of n measured points (the same at every snapshot), or None for all."""
    return fixed_subset(n, points, seed=12345, device=device)
