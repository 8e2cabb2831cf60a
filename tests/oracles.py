"""Reference computations the tests check ibtui against (importable as `oracles`: tests/ is on sys.path).

They are brute-force or closed-form versions of what ibtui computes fast; none of them is used by ibtui.
"""
from __future__ import annotations

import numpy as np
import torch

from ibtui.data.toys import SATURATION_X, saturation_labels
from ibtui.measures.mixture import gaussian_entropy_bits, mixture_entropy_1d
from ibtui.measures.sp import sp_mutual_information


# ------------------------------------------------------------------------------------------------
# The saturation toy of Goldfeld et al. (ICML 2019, §4): exact I(X;T) by quadrature, and SP on it


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
