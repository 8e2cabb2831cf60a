"""The Gaussian bound on I(T_{k+1}; T_k) during diffusion, and the input-compression bound.

Shwartz-Ziv, Painsky & Tishby (ICLR 2019 submission, §4.2, eqs. 4–9) split a layer's
weights during diffusion into the weights at the end of drift and an accumulated Brownian part,
W(τ) = W* + δW(τ), and treat δWᵀT_k + Z as Gaussian noise on the signal W*ᵀT_k.  With the components
of T_k of variance σ_T² and Z ~ N(0, σ_z² I), eq. 7 gives

    I(T_{k+1}; T_k | W*) ≤ ½ log |σ_T² W*ᵀW* + σ_T² δWᵀδW + σ_z² I| / |σ_T² δWᵀδW + σ_z² I|,

and Hadamard's inequality in the eigenbasis δWᵀδW = QΛQᵀ, with A = Qᵀ W*ᵀW* Q, gives eq. 9:

    I ≤ ½ Σ_i log2(1 + A_ii / (λ_i + σ_z²/σ_T²))   →   ½ Σ_i log2(1 + A_ii/λ_i)  as σ_z → 0.

By the DPI, I(X; T_{k+1}) ≤ I(T_k; T_{k+1}), which is how Fig. 1a plots it as a bound on I(X;T).

Orientation: weights are [S, d_in, d_out] and a layer computes y = x @ W, i.e. y = Wᵀx.  This is the
paper's own convention (T_{k+1} = σ(w*ᵀT_k + …) with w* ∈ R^{d_k × d_{k+1}}), so δWᵀδW and A are
d_{k+1} × d_{k+1} (output size) and the sum runs over the d_{k+1} output directions.  A convolution
must be passed as its matrix on patches, [S, c_in·k_h·k_w, c_out].

Also here, Theorem 1 (eq. 3): the input-compression bound on the generalisation gap.
All information values are in bits.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ibtui.measures.discrete import LN2

__all__ = [
    "BOUND_DEFINITION",
    "gaussian_bound",
    "input_variance",
    "BoundWindow",
    "input_compression_bound",
]


BOUND_DEFINITION = ("Gaussian bound on I(T_k;T_k+1) in bits = 1/2 sum_i log2(1 + A_ii/(lambda_i + sz2/sT2)), "
                    "dW = W - W*, dW^T dW = Q Lambda Q^T, A = Q^T W*^T W* Q; W* and sT2 frozen at the "
                    "drift->diffusion transition (Shwartz-Ziv et al. 2019 eq. 9)")


def _per_seed(v: Tensor | float, like: Tensor) -> Tensor:
    """A scalar or [S] value as a float64 [S] tensor on `like`'s device."""
    return torch.as_tensor(v, dtype=torch.float64, device=like.device).expand(like.shape[0])


@torch.no_grad()
def gaussian_bound(w_star: Tensor, w: Tensor, sigma_t2: Tensor | float, sigma_z2: float = 0.0,
                   eps: float = 1e-12) -> Tensor:
    """Eq. 9 of Shwartz-Ziv et al. 2019: ½ Σ_i log2(1 + A_ii / (λ_i + σ_z²/σ_T² + eps)), per seed, in bits.

    w_star, w: [S, d_in, d_out] (y = x @ W); δW = w − w_star; δWᵀδW = QΛQᵀ (batched eigh, float64);
    A_ii = ‖W* q_i‖² is the diagonal of Qᵀ W*ᵀW* Q.  Returns Tensor[S] in `w`'s float dtype.

    `eps` keeps the σ_z → 0 limit finite where δWᵀδW is singular (δW = 0, or d_in < d_out): the
    bound is then about ½ log2(A_ii/eps) per null direction, i.e. "unbounded".  Within a repeated
    eigenvalue Q is not unique and neither is the bound (Hadamard holds for every choice).
    """
    ws, dw = w_star.to(torch.float64), w.to(torch.float64) - w_star.to(torch.float64)
    lam, q = torch.linalg.eigh(dw.transpose(-1, -2) @ dw)  # [S, d_out], [S, d_out, d_out]
    a_diag = (ws @ q).square().sum(dim=-2)  # [S, d_out]
    s = (float(sigma_z2) / _per_seed(sigma_t2, w))[:, None]
    bound = 0.5 * torch.log1p(a_diag / (lam.clamp_min(0.0) + s + eps)).sum(dim=-1) / LN2
    return bound.to(w.dtype if w.is_floating_point() else torch.float32)


@torch.no_grad()
def input_variance(acts: Tensor) -> Tensor:
    """σ_T² of a layer's input: the per-unit variance over the N samples, averaged over units. [S, N, d] → [S]."""
    return acts.to(torch.float64).var(dim=1, unbiased=False).mean(dim=-1).to(acts.dtype)


class BoundWindow:
    """Freezes W* and σ_T² per seed and layer, then gives the eq. 9 bound at each later snapshot.

    Call :meth:`update` at every snapshot with the current weights (list over layers, [S, d_in, d_out])
    and σ_T² of each layer's input ([S, L], see :func:`input_variance`).  Freezing modes:

    - ``"transition"`` (default, as the paper: W* = "the weights at the end of the drift phase"): W*
      and σ_T² are taken from the buffered snapshot nearest (in log epoch) to the transition epoch
      passed in ``transition_epoch`` [S, L] (e.g. ``TransitionDetector.epoch``).  The transition is
      declared some snapshots after it happened, so past snapshots are kept on ``store_device`` from
      epoch ``keep_from`` on (pass ``TransitionDetector.earliest_pending_epoch``); memory is that many
      copies of the weights.  If the transition epoch is older than the buffer, the oldest buffered
      snapshot is used.
    - ``"confirmed"``: W* = the weights at the snapshot where the transition is first reported.
    - ``"epoch"``: W* = the weights at the first snapshot with epoch ≥ ``freeze_epoch``, for all seeds.

    The bound is NaN until a series is frozen and at the frozen snapshot itself (δW = 0 there).
    """

    _state_attrs = ("w_star", "sigma_t2", "frozen_epoch", "_buffer")  # what a checkpoint keeps

    def __init__(self, n_seeds: int, n_layers: int, *, mode: str = "transition", freeze_epoch: float | None = None,
                 sigma_z2: float = 0.0, eps: float = 1e-12, store_device: torch.device | str | None = None,
                 epoch_floor: float = 0.5):
        if mode not in ("transition", "confirmed", "epoch"):
            raise ValueError(f"unknown freeze mode {mode!r}: use 'transition', 'confirmed' or 'epoch'")
        if mode == "epoch" and freeze_epoch is None:
            raise ValueError("freeze mode 'epoch' needs freeze_epoch")
        self.shape = (int(n_seeds), int(n_layers))
        self.mode, self.freeze_epoch = mode, freeze_epoch
        self.sigma_z2, self.eps = float(sigma_z2), float(eps)
        # log-epoch distances clamp epochs here (epoch 0 has no log): half the smallest epoch step, 0.5 for whole
        # epochs, 0.5 / steps an epoch where snapshots fall inside epochs
        self.epoch_floor = float(epoch_floor)
        self.store_device = torch.device(store_device) if store_device is not None else None
        self.w_star: list[Tensor] | None = None
        self.sigma_t2: Tensor | None = None  # [S, L] frozen σ_T²
        self.frozen_epoch: Tensor | None = None  # [S, L] epoch of the frozen snapshot, NaN = not frozen
        self._buffer: list[tuple[float, list[Tensor], Tensor]] = []

    @property
    def frozen(self) -> Tensor:
        """Tensor[S, L] bool: W* is set."""
        return ~torch.isnan(self.frozen_epoch) if self.frozen_epoch is not None else torch.zeros(self.shape, dtype=torch.bool)

    def _init(self, weights: Sequence[Tensor], sigma_t2: Tensor) -> None:
        self.w_star = [torch.zeros_like(w) for w in weights]
        self.sigma_t2 = torch.full(self.shape, math.nan, dtype=torch.float64, device=sigma_t2.device)
        self.frozen_epoch = torch.full(self.shape, math.nan, dtype=torch.float64, device=sigma_t2.device)

    def _freeze(self, which: Tensor, epoch: float, weights: Sequence[Tensor], sigma_t2: Tensor) -> None:
        """Set W*, σ_T² of the series where `which` [S, L] is True from one snapshot."""
        for layer, w in enumerate(weights):
            m = which[:, layer].to(w.device)
            if bool(m.any()):
                self.w_star[layer][m] = w.to(self.w_star[layer].device)[m]
        which = which.to(self.sigma_t2.device)
        self.sigma_t2 = torch.where(which, sigma_t2.to(self.sigma_t2), self.sigma_t2)
        self.frozen_epoch = torch.where(which, torch.full_like(self.frozen_epoch, float(epoch)), self.frozen_epoch)

    @torch.no_grad()
    def update(self, epoch: float, weights: Sequence[Tensor], sigma_t2: Tensor,
               transition_epoch: Tensor | None = None, keep_from: float = 0.0) -> Tensor:
        """Record this snapshot, freeze what can be frozen, return the bound Tensor[S, L] (NaN where none)."""
        sigma_t2 = torch.as_tensor(sigma_t2, dtype=torch.float64).reshape(self.shape)
        if self.w_star is None:
            self._init(weights, sigma_t2)
        free = torch.isnan(self.frozen_epoch)
        if self.mode == "epoch":
            if epoch >= self.freeze_epoch:
                self._freeze(free, epoch, weights, sigma_t2)
        else:
            t_ep = torch.full(self.shape, math.nan, dtype=torch.float64) if transition_epoch is None else \
                torch.as_tensor(transition_epoch, dtype=torch.float64).reshape(self.shape)
            want = free & ~torch.isnan(t_ep.to(free.device))
            if self.mode == "confirmed":
                self._freeze(want, epoch, weights, sigma_t2)
            elif bool(free.any()):
                store = [w.detach().to(self.store_device or w.device, copy=True) for w in weights]
                self._buffer.append((float(epoch), store, sigma_t2.clone()))
                if bool(want.any()):
                    t_log = t_ep.to(free.device).clamp_min(self.epoch_floor).log()
                    buf_log = torch.tensor([e for e, _, _ in self._buffer], dtype=torch.float64,
                                           device=free.device).clamp_min(self.epoch_floor).log()
                    nearest = (buf_log[None, None, :] - t_log[..., None]).abs().argmin(dim=-1)  # [S, L]
                    for b, (e, ws, s2) in enumerate(self._buffer):
                        pick = want & (nearest == b)
                        if bool(pick.any()):
                            self._freeze(pick, e, ws, s2)
                if bool(torch.isnan(self.frozen_epoch).any()):
                    last = self._buffer[-1]
                    self._buffer = [entry for entry in self._buffer[:-1] if entry[0] >= keep_from] + [last]
                else:
                    self._buffer = []  # everything frozen: no more copies needed
        out = torch.full(self.shape, math.nan, dtype=torch.float64, device=self.frozen_epoch.device)
        usable = ~torch.isnan(self.frozen_epoch) & (self.frozen_epoch != float(epoch))
        for layer, w in enumerate(weights):
            m = usable[:, layer]
            if bool(m.any()):
                s2 = torch.where(m, self.sigma_t2[:, layer], 1.0)
                b = gaussian_bound(self.w_star[layer].to(w.device), w, s2.to(w.device), self.sigma_z2, self.eps)
                out[:, layer] = torch.where(m, b.to(out), out[:, layer])
        return out


@torch.no_grad()
def input_compression_bound(mi_xt_bits: Tensor | float, m: int, delta: float = 0.05, form: str = "paper") -> Tensor:
    """Theorem 1 (eq. 3, App. A eq. 13): |gap| ≤ √((2^{I(X;T)} + ln(2/δ)) / (2m)), I in bits, m samples.

    The log is natural: it comes from Hoeffding's 2|H| exp(−2ε²m) ≤ δ, i.e. ε² = (ln|H| + ln(2/δ))/(2m).
    ``form="paper"`` is eq. 3 as printed, with |H| → 2^{I(X;T)} put where ln|H| stands;
    ``form="union"`` substitutes consistently, ln|H| = I(X;T)·ln 2 (the union bound over 2^{I} typical
    cells), which is far smaller once I exceeds a few bits.
    """
    i = torch.as_tensor(mi_xt_bits, dtype=torch.float64)
    if form == "paper":
        card = torch.exp2(i)
    elif form == "union":
        card = i * LN2
    else:
        raise ValueError(f"unknown form {form!r}: use 'paper' or 'union'")
    return ((card + math.log(2.0 / delta)) / (2.0 * m)).sqrt()
