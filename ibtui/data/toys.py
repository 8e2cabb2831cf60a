"""The single-neuron saturation toy of Goldfeld et al. (ICML 2019; papers.md §1.4), with its exact MI.

T = tanh(wX + b) + Z, X uniform on {−3, −1, 1, 3}, Z ~ N(0, β²). T is a mixture of four Gaussians,
so I(X;T) = h(T) − h(Z) is known to quadrature precision: it is 2 bits while the four images are
≫ β apart and falls to the entropy of the cluster weights when tanh saturates them together
(1 bit for a 2+2 split at b = 0, H(¼) = 0.811 bits for the 3+1 split at b = −2w). This is the
oracle that checks the SP estimator and shows that the drop comes from clustering.
"""
from __future__ import annotations

import numpy as np
import torch

from ibtui.measures.mixture import gaussian_entropy_bits, mixture_entropy_1d
from ibtui.measures.sp import sp_mutual_information

SATURATION_X = (-3.0, -1.0, 1.0, 3.0)


def saturation_labels() -> torch.Tensor:
    """Two classes, {−3, −1, 1} → 0 and {3} → 1 (papers.md §1.4, recalled two-class version), int64 [4]."""
    return torch.tensor([0, 0, 0, 1], dtype=torch.int64)


def saturation_mi_exact(w: float, b: float, beta: float) -> float:
    """I(X;T) in bits = h(¼ Σ_x N(tanh(wx+b), β²)) − ½ log2(2πeβ²), by quadrature (mixture_entropy_1d)."""
    means = np.tanh(w * np.asarray(SATURATION_X) + b)
    return mixture_entropy_1d(means, None, beta) - gaussian_entropy_bits(beta**2)


def saturation_mi_sp(
    w: torch.Tensor,
    b: torch.Tensor,
    beta: float,
    n_mc: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SP estimate (mi [S], se [S]) in bits of the toy's I(X;T), one (w, b) per seed.

    The first (only) layer: each conditional mixture is the single Gaussian at tanh(w x_i + b), so
    cond_centers is [S, 4, 1, 1]; n_mc draws per input (sp_mutual_information).
    """
    x = torch.tensor(SATURATION_X, dtype=w.dtype, device=w.device)
    centers = torch.tanh(w.reshape(-1, 1) * x + b.reshape(-1, 1))  # [S, 4]
    out = sp_mutual_information(centers[:, :, None, None], saturation_labels().to(w.device), beta, n_mc, generator)
    return out["mi_xt"], out["mi_xt_se"]
