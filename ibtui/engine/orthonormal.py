"""Orthonormal (Parseval-style) weight regularisation: λ·‖WᵀW − I‖²_F added to each seed's loss.

Goldfeld et al. (ICML 2019) train the noisy SZT network with an orthonormality penalty
and find that it limits the clustering of same-class representations, and with it the compression
of I(X;T). A layer whose map has all singular values 1 preserves distances (within its row space), so
it cannot pull inputs together: that is the mechanism.

Which Gram. ibtui stores a layer's weight as W [S, in, out] and computes z = Wᵀx, so the layer's
matrix is M = Wᵀ [out, in] and Parseval networks' constraint M Mᵀ = I (Cisse et al. 2017) is
**WᵀW = I_out**: each unit's incoming weight vector (a column of W) has unit norm and the columns are
orthogonal. For the narrowing layers of SZT (12→10→…→3) and the square ones of boolean4 this is
reachable (out ≤ in); WWᵀ = I_in is not (rank ≤ out < in). Both forms have the same gradient,
∂/∂W ‖WᵀW − I‖² = 4W(WᵀW − I) = 4(WWᵀ − I)W = ∂/∂W ‖WWᵀ − I‖², and values that differ only by the
constant |in − out|: the penalty is Σ_k (σ_k² − 1)² over W's singular values plus that constant. So
training does not depend on the choice; `penalty` reports the reachable one, Σ over the
min(in, out) singular values (0 iff W is a partial isometry), and the gradient uses the smaller Gram
(min(in, out)² instead of max(in, out)²).

The MLP back end computes gradients by hand, so the penalty adds its gradient to `.grad` directly
(`after_step`, after the loss gradients are set and before the optimiser step). Each seed's penalty
involves only its own weights, so seeds stay independent.
"""
from __future__ import annotations

import torch

from ibtui.engine.context import RunContext


def small_gram(w: torch.Tensor) -> torch.Tensor:
    """The Gram of w [S, in, out] on its smaller side: WᵀW [S, out, out] if out ≤ in, else WWᵀ [S, in, in]."""
    return w.transpose(1, 2) @ w if w.shape[2] <= w.shape[1] else w @ w.transpose(1, 2)


def orthonormal_penalty(w: torch.Tensor) -> torch.Tensor:
    """‖G − I‖²_F per seed [S], G the smaller Gram of w [S, in, out] (= ‖WᵀW − I‖²_F when out ≤ in)."""
    g = small_gram(w)
    eye = torch.eye(g.shape[-1], dtype=w.dtype, device=w.device)
    return (g - eye).pow(2).sum(dim=(1, 2))


def orthonormal_grad(w: torch.Tensor) -> torch.Tensor:
    """∂/∂W ‖WᵀW − I‖²_F = 4 W (WᵀW − I) = 4 (WWᵀ − I) W, [S, in, out], via the smaller Gram."""
    g = small_gram(w)
    g = g - torch.eye(g.shape[-1], dtype=w.dtype, device=w.device)
    return 4.0 * (w @ g if w.shape[2] <= w.shape[1] else g @ w)


class OrthonormalPenalty:
    _state_attrs: tuple[str, ...] = ()  # nothing accumulates: a checkpoint keeps no state of its own

    """Adds λ·∂‖WᵀW − I‖²_F/∂W to the gradient of each penalised layer's weight, every step.

    Layers are 1-based as in the records ("1" = the first hidden layer's incoming weights); an empty
    `model.orthonormal_layers` means every hidden layer. The output layer is left free by default: with
    tanh inputs in [−1, 1]^d, an orthonormal map onto the logits bounds them by √d, which caps how
    confident, and so how well fitted, the classifier can be; name it in the list to penalise it too.
    """

    watches_steps = True
    graph_safe = True  # pure device arithmetic on the weights: it can be part of a captured epoch

    def __init__(self, ctx: RunContext):
        sc = ctx.sc
        self.strength = float(sc.model.orthonormal)
        # The MLP's weights (the scenario refuses the penalty on other models), the parameters themselves:
        # their .grad is added to at each step.
        self.weights = list(ctx.model.weight_matrices())
        n_layers = len(self.weights)  # hidden layers + the output layer
        layers = list(sc.model.orthonormal_layers) or list(range(1, n_layers))
        self.layers = sorted(set(layers))

    def watches_epoch(self, epoch: int) -> bool:
        return True

    @torch.no_grad()
    def after_step(self, step, epoch: int) -> None:
        """Every step (the step may be a device counter inside a captured epoch: it is not read)."""
        weights = self.weights
        for layer in self.layers:
            w = weights[layer - 1]
            g = orthonormal_grad(w).mul_(self.strength)
            if w.grad is None:
                w.grad = g
            else:
                w.grad.add_(g)

    @torch.no_grad()
    def penalty(self) -> torch.Tensor:
        """λ·Σ_layers ‖WᵀW − I‖²_F per seed [S] (reachable form, see the module docstring)."""
        weights = self.weights
        return self.strength * sum(orthonormal_penalty(weights[l - 1]) for l in self.layers)
