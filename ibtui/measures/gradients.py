"""Training dynamics: per-layer gradient SNR, weight norms, and the drift→diffusion transition.

Shwartz-Ziv, Painsky & Tishby (ICLR 2019 submission, Sec. 3) describe SGD in two phases:
*drift*, where the mean of the mini-batch gradients is large against its batch-to-batch fluctuation
(high SNR) and the weights move almost linearly, and *diffusion*, where the mean is small against the
fluctuation (low SNR) and the weights random-walk.  The transition is "the iteration where the
derivative of the SNR is maximal" (§6).  This module gives the engine those numbers:

- :class:`GradientMoments` keeps running sums of the weight gradients of the mini-batches actually
  used in training (no extra passes, no stored per-batch gradient) and returns mean, std and SNR per
  seed and layer for the window (an epoch, or the last N steps before a snapshot: measure.dynamics.window_steps).
- :func:`weight_norms` gives ‖W_l‖_F and the displacement ‖W_l − W_l(0)‖_F (ibid., the weight-change figure).
- :class:`TransitionDetector` / :func:`detect_transition` locate the steepest fall of the smoothed
  log SNR against log epoch, online, declaring it only once the fall is confirmed.

The SNR is per layer.  The authors' public IDNNs code plotted (Σ_{l'≤l} mean)² / Σ_{l'≤l} std, cumulative
over layers and mixing units; that bug is not copied.  When the window is one pass over the
training set (each point once), ḡ is close to the full-batch gradient along the epoch's path, so the SNR
can fall far below 1/√n; with batches drawn with replacement it levels off near 1/√n (E‖ḡ‖² ≥ tr Cov / n).

"Epoch" in the transition detector is any increasing time index (epochs, or steps when the SNR window
is a fixed number of steps, as a run with hundreds of batches an epoch needs to resolve an early
transition).
"""
from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "SNR_DEFINITION",
    "GradientMoments",
    "weight_norms",
    "TransitionDetector",
    "detect_transition",
]

SNR_DEFINITION = ("SNR = ||mean_b g_b||_2 / sqrt(tr Cov_b g_b) per layer (not cumulative), weight gradients only, "
                  "over the n mini-batches of the epoch (unbiased n-1 covariance); Shwartz-Ziv et al. 2019 §6, ibsgd")


class GradientMoments:
    """Running first and second moments of each layer's weight gradient over the mini-batches of a window.

    Per seed s and layer l, over the n gradients g_b (b = 1..n) passed to :meth:`update`:

    - ``grad_mean`` = ‖ḡ‖₂ with ḡ = (1/n) Σ_b g_b (ibsgd ``gradmean``, IDNNs mean);
    - ``grad_std``  = √(tr Cov_b g_b), the **unbiased** form tr Cov = Σ_b ‖g_b − ḡ‖² / (n − 1)
      (ibsgd uses the biased 1/n std; the ratio differs by √(n/(n−1)));
    - ``snr`` = grad_mean / grad_std (Shwartz-Ziv, Painsky & Tishby 2019: "the ratio between the means of the gradients
      and their standard deviations"; not squared).

    Stability: sums are kept about a shift K = the window's first gradient, Σ (g − K) and Σ ‖g − K‖²,
    in float64 by default, so tr Cov = (Σ‖d‖² − ‖Σd‖²/n)/(n − 1) does not cancel catastrophically when
    ‖ḡ‖² ≫ tr Cov (high SNR).  Memory: three tensors of each layer's shape (shift, sum, and sum of squares
    kept elementwise) per seed.  An update is three multi-tensor (``torch._foreach_*``) ops over all layers,
    one kernel launch each on a GPU, plus a conversion per layer when the gradients' dtype is not ``dtype``;
    the engine accumulates in float32 (the shift keeps it accurate, see the float32 stability test).
    """

    _state_attrs = ("count", "_shift", "_sum", "_sumsq")  # what a checkpoint keeps (ibtui.engine.checkpoint)

    def __init__(self, n_seeds: int, n_layers: int, device: torch.device | str | None = None,
                 dtype: torch.dtype = torch.float64):
        self.n_seeds, self.n_layers = int(n_seeds), int(n_layers)
        self.device = torch.device(device) if device is not None else None
        self.dtype = dtype
        self.reset()

    def reset(self) -> None:
        """Start a new window (call at its first step)."""
        self.count = 0
        self._shift: list[Tensor] = []
        self._sum: list[Tensor] = []
        self._sumsq: list[Tensor] = []

    @torch.no_grad()
    def update(self, grads: Sequence[Tensor]) -> None:
        """Add one mini-batch: ``grads[l]`` is layer l's weight gradient [S, ...] (any trailing shape)."""
        if len(grads) != self.n_layers:
            raise ValueError(f"expected {self.n_layers} layer gradients, got {len(grads)}")
        if self.count == 0:
            for g in grads:
                if g.shape[0] != self.n_seeds:
                    raise ValueError(f"gradient has {g.shape[0]} seeds, expected {self.n_seeds}")
                dev = self.device or g.device
                self._shift.append(g.detach().to(device=dev, dtype=self.dtype).clone())
                self._sum.append(torch.zeros(g.shape, device=dev, dtype=self.dtype))
                self._sumsq.append(torch.zeros(g.shape, device=dev, dtype=self.dtype))
        else:
            gs = [g.detach() if g.dtype == self.dtype and g.device == k.device
                  else g.detach().to(device=k.device, dtype=self.dtype) for g, k in zip(grads, self._shift)]
            d = torch._foreach_sub(gs, self._shift)
            torch._foreach_add_(self._sum, d)
            torch._foreach_addcmul_(self._sumsq, d, d)
        self.count += 1

    @torch.no_grad()
    def summary(self) -> dict[str, Tensor]:
        """{"grad_mean", "grad_std", "snr"}: each Tensor[S, L] (float32). std and snr are NaN if n < 2."""
        n = self.count
        if n == 0:
            nan = torch.full((self.n_seeds, self.n_layers), math.nan, device=self.device)
            return {"grad_mean": nan, "grad_std": nan.clone(), "snr": nan.clone()}
        means, stds = [], []
        for k, s, q in zip(self._shift, self._sum, self._sumsq):
            mean = torch.linalg.vector_norm((k + s / n).flatten(1), dim=1)
            if n > 1:
                ss = torch.linalg.vector_norm(s.flatten(1), dim=1).square()
                var = ((q.flatten(1).sum(1) - ss / n) / (n - 1)).clamp_min(0.0)
                std = var.sqrt()
            else:
                std = torch.full_like(mean, math.nan)
            means.append(mean)
            stds.append(std)
        mean = torch.stack(means, dim=1)
        std = torch.stack(stds, dim=1)
        return {"grad_mean": mean.float(), "grad_std": std.float(), "snr": (mean / std).float()}


@torch.no_grad()
def weight_norms(weights: Sequence[Tensor], initial: Sequence[Tensor]) -> dict[str, Tensor]:
    """{"weight_norm": ‖W_l‖_F, "weight_change": ‖W_l − W_l(0)‖_F}, each Tensor[S, L]."""
    norms = [torch.linalg.vector_norm(w.flatten(1), dim=1) for w in weights]
    change = [torch.linalg.vector_norm((w - w0).flatten(1), dim=1) for w, w0 in zip(weights, initial)]
    return {"weight_norm": torch.stack(norms, dim=1), "weight_change": torch.stack(change, dim=1)}


class TransitionDetector:
    """Online drift→diffusion transition, per seed and layer, from one SNR snapshot at a time.

    Criterion (Shwartz-Ziv, Painsky & Tishby 2019: "the iteration where the derivative of the SNR is maximal"; sign and
    axes inferred): the steepest fall of the smoothed log10 SNR against log10 epoch.

    Smoothing: at each snapshot j a least-squares line is fitted to the points within ±``window``
    decades of epoch, giving a smoothed level ℓ_j and slope s_j.  A point is *complete* once data
    reach ``window`` decades past it; its ℓ and s never change after that.

    Confirmation, checked at the latest complete point c (x = log10 epoch):

    1. P = max ℓ over complete points in [x_c − ``lookback``, x_c − ``hold``) (the level before the fall;
       its position is p);
    2. every valid ℓ in the last ``hold`` decades [x_c − hold, x_c] is ≤ P − ``margin`` (fell and stayed
       down), and the fall is significant: max over the reference stretch of (ℓ − z·se) ≥ max over the
       last ``hold`` decades of (ℓ + z·se), where se is each smoothed level's standard error (the scatter
       of log SNR, pooled over the series from each point's deviation from the line through its
       neighbours, times the fit's leverage; z is widened to a Student t while the scatter is poorly known),
       so sparse or noisy stretches (the first epochs of a log schedule) do not raise false alarms;
    3. the steepest point j* = argmin s over [x_p, x_c] is at least ``hold`` decades old (x_j* ≤ x_c − hold).

    Then the transition is declared at epoch(j*), once, and kept.  Implied: the fall must average at
    least margin / (lookback − hold) decades of SNR per decade of epoch (0.33 with the defaults), so a
    slow drift-phase decline is not taken for the transition.  The lag between the transition and its
    declaration is about margin/|slope| + hold + window decades (0.5 decade, ×3 in epochs, for a fall of
    slope −1 with the defaults, more while the noise estimate is young).  On a sharp kink followed by a
    steady power-law fall the steepest point is not unique: j* lands anywhere between the onset and the
    declaration (measured for slope −1.5 and noise 0.05 decade: median +0.2, at most +0.55 decade).
    False alarms on a flat curve with per-snapshot noise of 0.2 decade: about 1 series in 3000.

    Settings (decades are log10 units): ``window`` = 0.1 (half-width of the smoothing fit),
    ``margin`` = 0.3 (fall of log10 SNR, a factor 2), ``hold`` = 0.1, ``lookback`` = 1.0, ``z`` = 4,
    ``min_points`` = 3 (points a fit needs).  Epochs ≤ 0 and non-finite or non-positive SNR values
    are ignored.  Everything is vectorised over seeds and layers, with no host synchronisation; an
    update costs O(S·L·T) for the T snapshots in the last ``lookback`` decades (benchmarks/bench_dynamics.py
    times the whole dynamics probe against training without it).
    """

    _state_attrs = ("_epochs", "_x", "_y", "_slope", "_level", "_lev_var", "_ss", "_nr", "_n_complete", "epoch")
    _state_grows = ("_y", "_slope", "_level", "_lev_var")  # one column a snapshot: a checkpoint's may be wider

    def __init__(self, n_seeds: int, n_layers: int, *, window: float = 0.1, margin: float = 0.3,
                 hold: float = 0.1, lookback: float = 1.0, z: float = 4.0, min_points: int = 3,
                 device: torch.device | str | None = None):
        if not (window > 0 and margin > 0 and hold >= 0 and lookback > hold and min_points >= 2):
            raise ValueError("need window > 0, margin > 0, hold >= 0, lookback > hold, min_points >= 2")
        self.shape = (int(n_seeds), int(n_layers))
        self.window, self.margin, self.hold, self.lookback = float(window), float(margin), float(hold), float(lookback)
        self.z, self.min_points = float(z), int(min_points)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        b = self.shape[0] * self.shape[1]
        self._epochs: list[float] = []
        self._x: list[float] = []
        self._y = torch.empty(b, 64, dtype=torch.float64, device=self.device)  # raw log10 SNR, NaN = invalid
        self._slope = torch.empty(b, 64, dtype=torch.float64, device=self.device)
        self._level = torch.empty(b, 64, dtype=torch.float64, device=self.device)
        self._lev_var = torch.empty(b, 64, dtype=torch.float64, device=self.device)  # Var(level) / σ²
        self._ss = torch.zeros(b, dtype=torch.float64, device=self.device)  # Σ r² of the scatter estimate
        self._nr = torch.zeros(b, dtype=torch.float64, device=self.device)  # number of r terms
        self._n_complete = 0
        self.epoch = torch.full(self.shape, math.nan, dtype=torch.float64, device=self.device)

    # ------------------------------------------------------------------ state
    @property
    def detected(self) -> Tensor:
        """Tensor[S, L] bool: a transition has been declared."""
        return ~torch.isnan(self.epoch)

    @property
    def earliest_pending_epoch(self) -> float:
        """No transition still to be declared can be placed before this epoch (for buffers of past weights)."""
        if self._n_complete == 0:
            return 0.0
        return 10.0 ** (self._x[self._n_complete - 1] - self.lookback)

    def in_diffusion(self, epoch: float) -> Tensor:
        """Tensor[S, L] bool: `epoch` is at or after the declared transition."""
        return self.epoch <= float(epoch)

    def phase(self, epoch: float) -> list[list[str]]:
        """[S][L] of "drift" / "diffusion" at `epoch` (drift until a transition has been declared)."""
        return [["diffusion" if v else "drift" for v in row] for row in self.in_diffusion(epoch).tolist()]

    # ------------------------------------------------------------------ update
    @staticmethod
    def _grow(t: Tensor, n: int) -> Tensor:
        if n <= t.shape[1]:
            return t
        out = torch.empty(t.shape[0], max(n, 2 * t.shape[1]), dtype=t.dtype, device=t.device)
        out[:, :t.shape[1]] = t
        return out

    @torch.no_grad()
    def update(self, epoch: float, snr: Tensor) -> Tensor:
        """Add the SNR [S, L] measured at `epoch` (epochs increasing); return Tensor[S, L] bool newly declared."""
        newly = torch.zeros(self.shape, dtype=torch.bool, device=self.device)
        epoch = float(epoch)
        if epoch <= 0:
            return newly
        if self._epochs and epoch <= self._epochs[-1]:
            raise ValueError(f"epochs must increase: got {epoch} after {self._epochs[-1]}")
        snr = torch.as_tensor(snr).to(device=self.device, dtype=torch.float64).reshape(-1)
        y = torch.where(torch.isfinite(snr) & (snr > 0), snr.clamp_min(1e-300).log10(),
                        torch.full_like(snr, math.nan))
        t = len(self._x)
        self._y = self._grow(self._y, t + 1)
        self._y[:, t] = y
        self._epochs.append(epoch)
        self._x.append(math.log10(epoch))
        if t >= 2:  # scatter of log SNR: the deviation of each point from the line through its neighbours
            x0, x1, x2 = self._x[t - 2:t + 1]
            w0, w2 = (x2 - x1) / (x2 - x0), (x1 - x0) / (x2 - x0)
            r = (self._y[:, t - 1] - w0 * self._y[:, t - 2] - w2 * y) / math.sqrt(1.0 + w0 * w0 + w2 * w2)
            ok = ~torch.isnan(r)
            self._ss += torch.where(ok, r.square(), 0.0)
            self._nr += ok.to(torch.float64)
        if not self._complete_new_points():
            return newly
        return self._confirm()

    def _complete_new_points(self) -> bool:
        """Fit the smoothing line at every point whose window is now fully observed."""
        x, h, c0 = self._x, self.window, self._n_complete
        c1 = bisect.bisect_right(x, x[-1] - h + 1e-12)  # points j with x_j + h <= x_last
        c1 = min(c1, len(x))
        if c1 <= c0:
            return False
        lo = bisect.bisect_left(x, x[c0] - h - 1e-12)
        hi = bisect.bisect_right(x, x[c1 - 1] + h + 1e-12)
        xs = torch.tensor(x[lo:hi], dtype=torch.float64, device=self.device)
        xc = torch.tensor(x[c0:c1], dtype=torch.float64, device=self.device)
        dx = xs[None, :] - xc[:, None]  # [C, W]
        inwin = dx.abs() <= h + 1e-12
        y = self._y[:, lo:hi]  # [B, W]
        w = (inwin[None] & ~torch.isnan(y)[:, None, :]).to(torch.float64)  # [B, C, W]
        y0 = torch.nan_to_num(y, nan=0.0)[:, None, :]
        n = w.sum(-1)
        sx, sy = (w * dx).sum(-1), (w * y0).sum(-1)
        sxx, sxy = (w * dx * dx).sum(-1), (w * dx * y0).sum(-1)
        nn = n.clamp_min(1.0)
        var = sxx - sx * sx / nn
        slope = (sxy - sx * sy / nn) / var
        level = sy / nn - slope * sx / nn  # the fitted line at the point itself (dx = 0)
        bad = (n < self.min_points) | (var <= 1e-12 * nn)
        slope = slope.masked_fill(bad, math.nan)
        level = level.masked_fill(bad, math.nan)
        self._slope = self._grow(self._slope, c1)
        self._level = self._grow(self._level, c1)
        self._lev_var = self._grow(self._lev_var, c1)
        self._slope[:, c0:c1] = slope
        self._level[:, c0:c1] = level
        self._lev_var[:, c0:c1] = 1.0 / nn + (sx / nn).square() / var
        self._n_complete = c1
        return True

    def _confirm(self) -> Tensor:
        nc, eps = self._n_complete, 1e-12
        xc = self._x[nc - 1]
        c0 = bisect.bisect_left(self._x, xc - self.lookback - eps, 0, nc)  # only the last `lookback` decades matter
        dev, f64 = self.device, torch.float64
        x = torch.tensor(self._x[c0:nc], dtype=f64, device=dev)
        level, slope, lev_var = self._level[:, c0:nc], self._slope[:, c0:nc], self._lev_var[:, c0:nc]
        valid = ~torch.isnan(level)
        ninf = torch.tensor(-math.inf, dtype=f64, device=dev)
        ref = (x < xc - self.hold - eps)[None] & valid
        held = (x >= xc - self.hold - eps)[None] & valid
        big_p, p = torch.where(ref, level, ninf).max(dim=1)  # the level before the fall (first maximum)
        held_max = torch.where(held, level, ninf).max(dim=1).values
        # the fall must beat the noise too: some level before it, less z standard errors, must lie above
        # every level since, plus z standard errors.  σ² of log SNR is pooled over the series from each
        # point's deviation from the line through its two neighbours (unbiased under a local linear trend);
        # a level's standard error is σ times its fit's leverage.  z becomes a Student t for the pooled
        # degrees of freedom (first Cornish–Fisher term; neighbouring terms overlap, so dof = count / 2).
        dof = (self._nr / 2.0).clamp_min(1.0)
        z_t = self.z * (1.0 + (self.z ** 2 + 1.0) / (4.0 * dof))
        se = (z_t * (self._ss / self._nr.clamp_min(1.0)).sqrt())[:, None] * lev_var.sqrt()
        p_low = torch.where(ref, level - se, ninf).max(dim=1).values
        h_high = torch.where(held, level + se, ninf).max(dim=1).values
        ok = (torch.isfinite(big_p) & held.any(dim=1) & (big_p - held_max >= self.margin) & (p_low >= h_high)
              & (self._nr > 0))
        fall = (x[None] >= x[p][:, None] - eps) & ~torch.isnan(slope)
        s_min, j = torch.where(fall, slope, torch.tensor(math.inf, dtype=f64, device=dev)).min(dim=1)
        ok &= torch.isfinite(s_min) & (s_min < 0) & (x[j] <= xc - self.hold + eps)
        epochs = torch.tensor(self._epochs[c0:nc], dtype=f64, device=dev)
        flat_epoch = self.epoch.reshape(-1)
        new = ok & torch.isnan(flat_epoch)
        self.epoch = torch.where(new, epochs[j], flat_epoch).reshape(self.shape)
        return new.reshape(self.shape)


def detect_transition(epochs: Tensor | Sequence[float], snr: Tensor, **settings) -> Tensor:
    """Transition epoch per series of `snr` [..., T] at `epochs` [T]: NaN where none is confirmed.

    Runs :class:`TransitionDetector` (same settings, same result as online) over the whole series.
    """
    snr = torch.as_tensor(snr)
    lead = snr.shape[:-1]
    flat = snr.reshape(-1, snr.shape[-1])
    det = TransitionDetector(flat.shape[0], 1, device=snr.device, **settings)
    for t, e in enumerate(torch.as_tensor(epochs).tolist()):
        det.update(e, flat[:, t:t + 1])
    return det.epoch.reshape(lead)
