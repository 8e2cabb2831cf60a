"""The autograd back end for convolutional networks (the noisy MNIST CNN, ResNet-32): image batches.

Why this module exists: `MlpBackend` is fast because its backward is written by hand for dense layers;
convolutions, pooling and batch norm are left to autograd here. The engine's loop is unchanged: a back end
supplies `start_epoch`, `forward_backward` and `snapshot` (the Backend protocol of `ibtui.engine.backends`).

- Batches are gathered from the images held on the device, [S, B, C, H, W] (each seed its own order);
  with data.augment, every seed's images get a random 4-pixel-padded crop and a horizontal flip with
  probability ½ (He et al. 2016 §4.2), on the device, from the counter-based stream (seed, step), so a
  seed's augmentation does not depend on the seeds beside it.
- Each seed's gradient is that of its own mean cross-entropy: the loss summed over seeds is backpropagated.
- The model trains in train mode (batch statistics) and is measured in eval mode (running statistics,
  no noise). `start_epoch` switches it back to train mode.
- A snapshot forwards the test set and the MI points in chunks, without gradients. The training loss
  and accuracy reported at a snapshot are the running means over the mini-batches of the epoch just
  trained (with that epoch's noise, augmentation and batch statistics, and weights changing during the
  epoch); a separate pass over 50–60k training images at every snapshot would cost a third of an epoch.
  Only the initial snapshot (epoch 0, no batch yet) evaluates the training set in eval mode.

Layers returned at a snapshot: the model's hidden representations flattened to [S, n, d] (the CNN's
two pooled conv maps and its dense layer; ResNet-32's three stage outputs, global-average-pooled),
then the softmax output. (Estimators on layers too wide for them are refused by the scenario's
validation, `ibtui.scenario`, before anything is built.)
"""
from __future__ import annotations


import torch
import torch.nn.functional as F

from ibtui import quantities as Q
from ibtui.engine import rng
from ibtui.engine.context import RunContext

STREAM_AUGMENT = 101  # rng stream of the augmentation draws (ibtui.engine.rng's own streams are 1–3)
CHUNK_IMAGES = 4096  # images (seeds × points) per gradient-free forward at a snapshot
CROP_PAD = 4  # He et al.: "4 pixels are padded on each side, and a 32×32 crop is randomly sampled"


# ------------------------------------------------------------------------------------------------
# Augmentation


def augment_batch(x: torch.Tensor, seeds: torch.Tensor, step: int, pad: int = CROP_PAD) -> torch.Tensor:
    """Random crop and horizontal flip of x [S, B, C, H, W], independently for every seed and image.

    Each image is zero-padded by `pad` pixels on every side, an H×W window at offsets (dy, dx),
    uniform on {0, …, 2·pad}², is cut out, and it is mirrored left-right when the flip draw is < ½.
    The three draws per image come from rng.uniform(seeds, (STREAM_AUGMENT, step), 3B), so they
    depend only on (seed, step). One gather does all S·B crops.
    """
    s, b, c, h, w = x.shape
    u = rng.uniform(seeds, (STREAM_AUGMENT, step), 3 * b).view(s, 3, b)
    span = 2 * pad + 1
    dy = (u[:, 0] * span).long().clamp_(max=span - 1).reshape(-1, 1)  # [S·B, 1]
    dx = (u[:, 1] * span).long().clamp_(max=span - 1).reshape(-1, 1)
    flip = (u[:, 2] < 0.5).reshape(-1, 1)
    cols = torch.arange(w, device=x.device)
    cols = torch.where(flip, w - 1 - cols, cols) + dx  # [S·B, W]: column j of the output reads this column
    rows = torch.arange(h, device=x.device) + dy  # [S·B, H]
    wp = w + 2 * pad
    flat = (rows[:, :, None] * wp + cols[:, None, :]).reshape(s * b, 1, h * w).expand(-1, c, -1)
    padded = F.pad(x.reshape(s * b, c, h, w), (pad, pad, pad, pad))
    return padded.flatten(2).gather(2, flat).view(s, b, c, h, w)


# ------------------------------------------------------------------------------------------------
# The back end


class AutogradBackend:
    """Autograd back end for a seed-batched nn.Module returning (logits [S, B, K], hidden [[S, B, d_l]…])."""

    notes: tuple[str, ...] = ()

    def __init__(self, ctx: RunContext):
        self.ctx = ctx
        self.model = ctx.model
        data = ctx.data
        self.x, self.y = data.x, data.y
        self.augment = bool(ctx.sc.data.augment)
        s = ctx.n_seeds
        self.chunk = max(1, CHUNK_IMAGES // s)
        self.test_idx = data.test.nonzero()[:, 1].reshape(s, -1)  # [S, n_test]
        self.activations = ["relu"] * len(self.model.layer_widths) if ctx.sc.model.kind == "resnet32" \
            else [ctx.sc.model.activation] * len(self.model.layer_widths)
        self.order: torch.Tensor | None = None
        dev = data.x.device
        self._loss_sum = torch.zeros(s, device=dev)
        self._correct_sum = torch.zeros(s, device=dev)
        self._count = 0

    # -------------------------------------------------------------- training
    def start_epoch(self, order: torch.Tensor) -> None:
        self.order = order
        self.model.train()
        self._loss_sum.zero_()
        self._correct_sum.zero_()
        self._count = 0

    def forward_backward(self, start: int, stop: int, beta: float, step: int) -> None:
        seeds = self.ctx.seed_tensor
        idx = self.order[:, start:stop]  # [S, B]
        x = self.x[idx]  # [S, B, C, H, W]
        if self.augment:
            x = augment_batch(x, seeds, step)
        noise = rng.noise_fn(seeds, (rng.STREAM_NOISE, step)) if beta > 0 else None
        y = self.y[idx]
        self.model.zero_grad(set_to_none=True)
        with torch.enable_grad():
            logits, _ = self.model(x, beta, noise)
            ce = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(y.shape)
            ce.mean(dim=1).sum().backward()  # seed s's parameters get the gradient of seed s's mean loss
        with torch.no_grad():
            self._loss_sum += ce.detach().sum(dim=1)
            self._correct_sum += (logits.detach().argmax(dim=2) == y).sum(dim=1)
        self._count += idx.shape[1]

    # -------------------------------------------------------------- measurement
    def _forward(self, idx: torch.Tensor, keep: torch.Tensor | None = None, keep_all: bool = False):
        """Noiseless forward of points idx [S, n] in chunks → (logits [S, n, K], hidden [S, m, d_l]…).

        Hidden rows are kept for positions `keep` [m] (sorted, shared by all seeds), for every row when
        keep_all, else not at all (empty list).
        """
        logits, hidden = [], []
        for a in range(0, idx.shape[1], self.chunk):
            b = min(a + self.chunk, idx.shape[1])
            out, reps = self.model(self.x[idx[:, a:b]])
            logits.append(out)
            if keep_all:
                hidden.append(reps)
            elif keep is not None:
                sel = keep[(keep >= a) & (keep < b)] - a
                if sel.numel():
                    hidden.append([r.index_select(1, sel) for r in reps])
        layers = [torch.cat(parts, dim=1) for parts in zip(*hidden)] if hidden else []
        return torch.cat(logits, dim=1), layers

    @staticmethod
    def _mean_loss_acc(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ce = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(y.shape)
        return ce.mean(dim=1), (logits.argmax(dim=2) == y).float().mean(dim=1)

    @torch.no_grad()
    def snapshot(self, mi_idx: torch.Tensor | None):
        """Test loss/accuracy on the whole test set, train loss/accuracy as running means (see the module
        doc), and the layers on the MI points (taken from the test pass when they are test points)."""
        e = self.ctx
        self.model.eval()
        s, n_all = e.n_seeds, self.x.shape[0]
        if mi_idx is None:
            mi_idx = torch.arange(n_all, device=self.x.device).expand(s, n_all)
        test_idx = self.test_idx
        pos = torch.searchsorted(test_idx, mi_idx) if test_idx.shape[1] else None
        reuse = (pos is not None and bool((pos < test_idx.shape[1]).all())
                 and bool((test_idx.gather(1, pos) == mi_idx).all()) and bool((pos == pos[:1]).all()))
        keep = pos[0] if reuse else None
        if test_idx.shape[1]:
            logits_test, layers = self._forward(test_idx, keep=keep)
            loss_test, acc_test = self._mean_loss_acc(logits_test, self.y[test_idx])
        else:
            loss_test = acc_test = torch.full((s,), float("nan"), device=self.x.device)
        values = {}
        if reuse:
            logits_mi = logits_test.index_select(1, keep)
        else:
            logits_mi, layers = self._forward(mi_idx, keep_all=True)
        if self._count:
            loss_train = self._loss_sum / self._count
            acc_train = self._correct_sum / self._count
        else:  # before any training: one pass over the training set
            logits_train, _ = self._forward(e.train_idx)
            loss_train, acc_train = self._mean_loss_acc(logits_train, self.y[e.train_idx])
        values[("", Q.LOSS_TRAIN, "")] = loss_train
        values[("", Q.ACC_TRAIN, "")] = acc_train
        values[("", Q.LOSS_TEST, "")] = loss_test
        values[("", Q.ACC_TEST, "")] = acc_test
        layers = [*layers, torch.softmax(logits_mi, dim=2)]
        return values, layers, [*self.activations, "softmax"]
