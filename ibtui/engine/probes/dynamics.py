"""Training dynamics per layer, live: gradient SNR, weight norms, the drift→diffusion transition, the bounds.

Shwartz-Ziv, Painsky & Tishby (2019) describe SGD in two phases, per layer: drift (the mean
mini-batch gradient dominates its batch-to-batch fluctuation) and diffusion (the fluctuation dominates),
and bound what a layer passes on with a Gaussian-channel argument.  This probe wires the pure measures
(`ibtui.measures.gradients`, `ibtui.measures.gaussian_bound`) into the engine:

- the gradients are those of the mini-batches actually used in training, read in `after_step` (after the
  regularisers added theirs, before the optimiser step): no extra passes, running sums per seed only;
- the SNR window of a snapshot is the last epoch before it (measure.dynamics.window_steps = 0), or its last
  `window_steps` optimiser steps, cut at the previous snapshot so that windows never overlap (a step-based
  window resolves transitions at 10^3–10^4 iterations, where an image epoch is ~400 steps). With snapshots
  spaced in steps (measure.snapshot_unit = "step") the cut makes each window the steps since the previous
  snapshot, at most an epoch (or window_steps): the first snapshots, one step apart, have a window of one
  gradient, no covariance, and an SNR of NaN. The windows
  are fixed when the probe is built (the snapshot steps and steps per epoch are known); the moments are
  reset lazily at a window's first step and summarised at its snapshot. Only steps inside a window are
  accumulated, so with the log schedule the cost falls as the snapshots thin out;
- the transition detector is fed the ratio SNR of every snapshot (whatever form is displayed), so its
  margin means the same in both forms;
- the Gaussian bound is computed for every layer j = 1..L on the pair (j−1)-j, the input of layer j being
  T_{j−1} (T_0 = X): W* of layer j is frozen at layer j's transition (or at `bound_epoch`) with σ_T² of its
  input at that snapshot;
- the input-compression bound (Theorem 1) comes from the I(X;T) of the last hidden layer that the first MI
  estimator measured at the same snapshot (`Snapshot.last_hidden_mi_xt`, set by the engine after the MI
  probes ran), next to the measured generalisation gaps (from `Snapshot.losses`).

Quantities (estimator ""): per layer "1".."L" (L = number of weight matrices, the last is the output):
grad_mean, grad_std, snr, weight_norm, weight_change, transition_epoch (NaN until declared), phase
(0 drift, 1 diffusion); per pair "(j−1)-j": gaussian_bound (bits, NaN until W* is frozen); whole network
"": gen_gap (loss_test − loss_train, nats), error_gap (acc_train − acc_test), input_compression_bound.
"""
from __future__ import annotations

import bisect
import math
from typing import Callable

import torch

from ibtui import quantities as Q
from ibtui.engine.context import RunContext
from ibtui.engine.probes.base import Probe
from ibtui.engine.snapshot import Snapshot, Values
from ibtui.measures.gaussian_bound import BOUND_DEFINITION, BoundWindow, input_compression_bound, input_variance
from ibtui.measures.gradients import SNR_DEFINITION, GradientMoments, TransitionDetector, weight_norms
from ibtui.records import epoch_at

COMPRESSION_DELTA = 0.05  # confidence 1 − δ of Theorem 1


def as_matrix(w: torch.Tensor) -> torch.Tensor | None:
    """A layer's weight as the [S, d_in, d_out] matrix the Gaussian bound needs (y = x @ W).

    Dense layers are already so; a convolution [S, c_out, c_in, k_h, k_w] becomes its matrix on patches
    [S, c_in·k_h·k_w, c_out].  Anything else has no matrix form here (None).
    """
    if w.dim() == 3:
        return w
    if w.dim() == 5:
        return w.flatten(2).transpose(1, 2)
    return None


def snr_windows(snapshot_steps: list[int], steps_per_epoch: int, window_steps: int
                ) -> list[tuple[int, int, int | float]]:
    """(first step, end step, snapshot epoch) of every snapshot's SNR window, in order; steps count from 0.

    The window of the snapshot after step s ends at s (its epoch is records.epoch_at(s)); it is the last epoch
    (window_steps = 0) or the last window_steps steps, never reaching back before the previous snapshot.
    """
    out, previous = [], 0
    span = steps_per_epoch if window_steps <= 0 else window_steps
    for end in sorted(s for s in snapshot_steps if s > 0):
        out.append((max(previous, end - span), end, epoch_at(end, steps_per_epoch)))
        previous = end
    return out


class DynamicsProbe(Probe):
    """Gradient SNR, weight norms, transition, phase and bounds per layer and seed (see the module doc)."""

    watches_steps = True
    _state_attrs = ("w0", "_window", "moments", "detector", "bound")  # what a checkpoint keeps

    def __init__(self, ctx: RunContext):
        st = ctx.sc.measure.dynamics
        self.settings = st
        self.device = ctx.device
        self.weights = list(ctx.model.weight_matrices())  # the parameters themselves: .grad is read each step
        s, n_layers = ctx.n_seeds, len(self.weights)
        self.n_layers = n_layers
        self.w0 = [w.detach().clone() for w in self.weights]
        self.moments = GradientMoments(s, n_layers, device=self.device, dtype=torch.float32)  # shifted sums
        self.detector = TransitionDetector(s, n_layers, window=st.window, margin=st.margin, hold=st.hold,
                                           device=self.device)
        epoch_mode = st.bound_w_star == "epoch"
        floor = 0.5 / ctx.steps_per_epoch if ctx.sc.measure.snapshot_unit == "step" else 0.5  # half a snapshot step
        self.bound = BoundWindow(s, n_layers, mode="epoch" if epoch_mode else "transition",
                                 freeze_epoch=float(st.bound_epoch) if epoch_mode else None, epoch_floor=floor)
        self.matrices_ok = all(as_matrix(w) is not None for w in self.weights)
        self.x_variance = self._input_variance(ctx)  # [S]: σ_T² of layer 1's input X (fixed)
        self.m_train = int(ctx.train_idx.shape[1])
        self.windows = snr_windows(sorted(ctx.snapshot_steps), ctx.steps_per_epoch, st.window_steps)
        self._starts = [first for first, _, _ in self.windows]
        spe = ctx.steps_per_epoch
        self._epochs = {e for first, end, _ in self.windows for e in range(first // spe, -(-end // spe))}
        self._window: int | None = None  # the snapshot epoch whose window the moments hold
        w_star = f"the weights at epoch {st.bound_epoch}" if epoch_mode else "the weights at the layer's transition"
        snr_form = "reported squared (SNR²)" if st.snr == "squared" else "reported as the ratio"
        window = ("the last epoch before each snapshot" if st.window_steps <= 0 else
                  f"the last {st.window_steps} optimiser steps before each snapshot")
        window += (" (fewer when the previous snapshot is closer)" if st.window_steps > 0
                   or ctx.sc.measure.snapshot_unit == "step" else "")
        if ctx.sc.measure.snapshot_unit == "step":
            window += ("; snapshots are spaced in steps, so a window is the steps since the previous snapshot: one "
                       "step (no covariance, SNR NaN) at the first ones, and as it grows the SNR of a diffusion "
                       "phase falls like 1/sqrt(steps) (set window_steps to hold it fixed once the spacing allows)")
        self.notes = (
            f"dynamics: {SNR_DEFINITION}; {snr_form}; window = {window}. Transition = "
            f"steepest fall of the smoothed log SNR (ratio) against log epoch, window ±{st.window:g}, margin "
            f"{st.margin:g}, hold {st.hold:g} decades; declared some snapshots after it happens.",
            f"dynamics: {BOUND_DEFINITION}; pair (j-1)-j bounds layer j, T_0 = X; W* = {w_star}, sigma_z = 0."
            + ("" if self.matrices_ok else " Not computed: a layer's weight has no matrix form."),
            f"dynamics: input_compression_bound = sqrt((2^I(X;T) + ln(2/delta)) / (2m)), Theorem 1 as printed, "
            f"I(X;T) of the last hidden layer from the first MI estimator, m = {self.m_train} training points, "
            f"delta = {COMPRESSION_DELTA:g}; compare with error_gap = acc_train - acc_test (gen_gap = loss_test - "
            f"loss_train in nats).",
        )

    @staticmethod
    @torch.no_grad()
    def _input_variance(ctx: RunContext) -> torch.Tensor:
        """σ_T² of X: the per-feature variance over all data points, averaged over features, for every seed."""
        x = ctx.data.x.reshape(ctx.data.x.shape[0], -1).float()
        return input_variance(x[None]).expand(ctx.n_seeds).to(torch.float64)

    # ------------------------------------------------------------------ every step
    def watches_epoch(self, epoch: int) -> bool:
        return epoch in self._epochs  # any other epoch's steps would never be reported

    def window_of(self, step: int) -> int | None:
        """The snapshot epoch whose SNR window holds optimiser step `step`, or None."""
        i = bisect.bisect_right(self._starts, step) - 1
        if i < 0 or step >= self.windows[i][1]:
            return None
        return self.windows[i][2]

    def after_step(self, step: int, epoch: int) -> None:
        window = self.window_of(step)
        if window is None:
            return
        if self._window != window:  # first step of a new window
            self.moments.reset()
            self._window = window
        self.moments.update([w.grad if w.grad is not None else torch.zeros_like(w) for w in self.weights])

    # ------------------------------------------------------------------ every snapshot
    def at_snapshot(self, snap: Snapshot) -> Values:
        return self.start(snap)(snap)

    @torch.no_grad()
    def start(self, snap: Snapshot) -> Callable[[Snapshot], Values]:
        """Now: what reads the gradients' window, the weights and the detector. Later: the generalisation
        quantities, which read the last hidden layer's I(X;T) from the finished snapshot."""
        epoch = snap.epoch
        if self._window == epoch and self.moments.count > 0:
            grads = self.moments.summary()
        else:  # the initial snapshot (or a snapshot whose window was not watched): no gradients yet
            nan = torch.full((self.x_variance.shape[0], self.n_layers), math.nan, device=self.device)
            grads = {Q.GRAD_MEAN: nan, Q.GRAD_STD: nan, Q.SNR: nan}
        snr = grads[Q.SNR]
        if epoch > 0:
            self.detector.update(epoch, snr)
        norms = weight_norms([w.detach() for w in self.weights], self.w0)
        shown = {Q.GRAD_MEAN: grads[Q.GRAD_MEAN], Q.GRAD_STD: grads[Q.GRAD_STD],
                 Q.SNR: snr.square() if self.settings.snr == "squared" else snr,
                 Q.WEIGHT_NORM: norms["weight_norm"], Q.WEIGHT_CHANGE: norms["weight_change"],
                 Q.TRANSITION_EPOCH: self.detector.epoch, Q.PHASE: self.detector.in_diffusion(epoch).float()}
        out: Values = {}
        for quantity, table in shown.items():
            for j in range(self.n_layers):
                out[(str(j + 1), quantity, "")] = table[:, j]
        out.update(self._gaussian_bound(epoch, snap))
        return lambda final: {**out, **self._generalisation(final)}

    def _gaussian_bound(self, epoch: int, snap: Snapshot) -> Values:
        """Eq. 9 for every layer j on the pair (j−1)-j, once its W* is frozen (NaN before)."""
        if not self.matrices_ok or len(snap.layers) != self.n_layers:
            return {}
        sigma_t2 = self._sigma_t2(snap)
        matrices = [as_matrix(w.detach()) for w in self.weights]
        bound = self.bound.update(float(epoch), matrices, sigma_t2, transition_epoch=self.detector.epoch,
                                  keep_from=self.detector.earliest_pending_epoch)
        return {(f"{j}-{j + 1}", Q.GAUSSIAN_BOUND, ""): bound[:, j] for j in range(self.n_layers)}

    def _sigma_t2(self, snap: Snapshot) -> torch.Tensor:
        """σ_T² of each layer's input [S, L] (X, then T_1..T_{L−1} on the MI points).

        Eq. 9 uses it only through σ_z²/σ_T²: with σ_z = 0 (the paper's limit, used here) it cancels, so
        the variances (a pass over every representation) are computed only when σ_z > 0.
        """
        s = self.x_variance.shape[0]
        if self.bound.sigma_z2 <= 0:
            return torch.ones(s, self.n_layers, dtype=torch.float64, device=self.device)
        inputs = [self.x_variance] + [input_variance(h.flatten(2)).to(torch.float64) for h in snap.layers[:-1]]
        return torch.stack(inputs, dim=1)

    def _generalisation(self, snap: Snapshot) -> Values:
        """Measured gaps (from the snapshot's losses) and the Theorem 1 bound from the last hidden layer's I(X;T)."""
        values = snap.losses
        out: Values = {}
        if ("", Q.LOSS_TEST, "") in values and ("", Q.LOSS_TRAIN, "") in values:
            out[("", Q.GEN_GAP, "")] = values[("", Q.LOSS_TEST, "")] - values[("", Q.LOSS_TRAIN, "")]
        if ("", Q.ACC_TEST, "") in values and ("", Q.ACC_TRAIN, "") in values:
            out[("", Q.ERROR_GAP, "")] = values[("", Q.ACC_TRAIN, "")] - values[("", Q.ACC_TEST, "")]
        mi = snap.last_hidden_mi_xt
        if mi is not None and len(snap.layers) > 1:
            out[("", Q.INPUT_COMPRESSION_BOUND, "")] = input_compression_bound(
                mi, self.m_train, COMPRESSION_DELTA).to(mi.dtype)
        return out
