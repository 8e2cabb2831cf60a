"""What a snapshot is: the `Snapshot` every probe sees, the values it yields, loss and accuracy, the MI points.

Everything stays on the device as a dict {(layer, quantity, estimator): Tensor[S]} (`Values`); the engine
copies it to the host once per snapshot and turns it into records.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ibtui import quantities as Q
from ibtui.data.sampling import fixed_subset

Values = dict[tuple[str, str, str], torch.Tensor]


@dataclass(frozen=True, eq=False)
class Snapshot:
    """What every probe sees at a snapshot (all tensors on the device, all seeds at once)."""

    epoch: int | float  # fractional for a snapshot inside an epoch (measure.snapshot_unit = "step")
    beta: float  # the network's noise level now
    layers: list[torch.Tensor]  # [S, n, d_l] noiseless representations on the MI points; the last is the output
    activations: list[str]  # per layer: "tanh", "relu", …, "softmax"
    labels: torch.Tensor  # [n] (or [S, n] when seeds measure different points)
    point_idx: torch.Tensor | None  # [S, n] indices of the MI points in the data set, None = all points
    x_ids: torch.Tensor | None = None  # identity of each measured input when inputs repeat, else None
    losses: Values = field(default_factory=dict)  # loss and accuracy, train and test, from the back end
    # I(X;T) of the last hidden layer by the first MI estimator that measured it (the engine sets it after the
    # MI estimators ran; None when none did): what the input-compression bound needs.
    last_hidden_mi_xt: torch.Tensor | None = None
    key: int | None = None  # the counter of the snapshot's random measuring draws; None = its epoch

    @property
    def counter(self) -> int:
        """What keys the snapshot's random draws (SP, KSG): the epoch, or the step where snapshots share epochs."""
        return self.epoch if self.key is None else self.key


def pointwise_cross_entropy(logits_t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy [S, N] (nats) from feature-major logits [S, C, N] and targets [N] or [S, N].

    Two classes use the closed form softplus(±(z1 − z0)): the same value, far cheaper than a
    log-softmax over a dimension of size 2.
    """
    y = y.expand(logits_t.shape[0], -1)
    if logits_t.shape[1] == 2:
        diff = logits_t[:, 1, :] - logits_t[:, 0, :]
        return F.softplus((1 - 2 * y).to(diff.dtype) * diff)
    return F.cross_entropy(logits_t, y, reduction="none")


def loss_and_accuracy(logits_t: torch.Tensor, y: torch.Tensor, train: torch.Tensor, test: torch.Tensor) -> Values:
    """Mean cross-entropy (nats) and accuracy per seed on its train and test points; logits_t [S, C, N]."""
    ce = pointwise_cross_entropy(logits_t, y)
    # argmax over a size-2 dimension is slow on the CPU; comparing the two logits is the same decision
    pred = (logits_t[:, 1, :] > logits_t[:, 0, :]).long() if logits_t.shape[1] == 2 else logits_t.argmax(dim=1)
    correct = (pred == y).to(ce.dtype)
    out: Values = {}
    for mask, loss_q, acc_q in ((train, Q.LOSS_TRAIN, Q.ACC_TRAIN), (test, Q.LOSS_TEST, Q.ACC_TEST)):
        m = mask.to(ce.dtype)
        count = m.sum(dim=1).clamp_min(1.0)
        empty = m.sum(dim=1) == 0
        nan = torch.full_like(count, float("nan"))
        out[("", loss_q, "")] = torch.where(empty, nan, (ce * m).sum(dim=1) / count)
        out[("", acc_q, "")] = torch.where(empty, nan, (correct * m).sum(dim=1) / count)
    return out


def mi_points(mode: str, train: torch.Tensor, test: torch.Tensor, subset: int = 0) -> torch.Tensor | None:
    """Indices [S, n] of the points MI is measured on, or None for all points (shared by every seed).

    `subset` > 0 keeps a fixed random subset of that many of them (the same positions for every seed).
    """
    s, n = train.shape
    if mode == "all":
        idx = None if not subset or subset >= n else torch.arange(n, device=train.device).expand(s, n)
    else:
        mask = train if mode == "train" else test
        idx = mask.nonzero()[:, 1].reshape(s, -1)
    if idx is None or not subset or subset >= idx.shape[1]:
        return idx
    keep = fixed_subset(idx.shape[1], subset, seed=2024)
    return idx[:, keep.to(idx.device)]


def take(h: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
    """Rows idx [S, n] of h [S, N, d] per seed (all rows when idx is None)."""
    if idx is None:
        return h
    return h.gather(1, idx.unsqueeze(-1).expand(-1, -1, h.shape[-1]))
