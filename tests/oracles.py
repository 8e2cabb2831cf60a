"""Reference computations the tests check ibtui against (importable as `oracles`: tests/ is on sys.path).

They are brute-force or closed-form versions of what ibtui computes fast; none of them is used by ibtui.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy.special import logsumexp
from torch import Tensor

from ibtui.data.toys import SATURATION_X, saturation_labels
from ibtui.measures.discrete import LN2
from ibtui.measures.gaussian_bound import _per_seed
from ibtui.measures.mixture import _TAIL, _normalise, mixture_entropy_1d
from ibtui.measures.sp import sp_mutual_information


# ------------------------------------------------------------------------------------------------
# Gaussians and isotropic Gaussian mixtures: closed form and quadrature (differential entropies in bits)


def gaussian_entropy_bits(cov: np.ndarray | float) -> float:
    """h(N(μ, Σ)) = ½ log2 det(2πe Σ) bits (closed form); a scalar is a 1-D variance."""
    c = np.atleast_2d(np.asarray(cov, dtype=np.float64))
    sign, logdet = np.linalg.slogdet(2.0 * math.pi * math.e * c)
    if sign <= 0:
        raise ValueError("covariance must be positive definite")
    return 0.5 * logdet / LN2


def _log_mixture(t: np.ndarray, mu: np.ndarray, logw: np.ndarray, sigma: float) -> np.ndarray:
    """ln g(t) for points t [P, d] of g = Σ w_i N(μ_i, σ²I)."""
    d = mu.shape[1]
    sq = ((t[:, None, :] - mu[None, :, :]) ** 2).sum(-1)
    return logsumexp(logw[None, :] - sq / (2 * sigma**2), axis=1) - 0.5 * d * math.log(2 * math.pi * sigma**2)


def _grid_entropy(mu: np.ndarray, w: np.ndarray, sigma: float, per_sigma: int) -> float:
    """−Σ_i w_i ∫ N(t; μ_i, σ²I) ln g(t) dt, each term by the trapezoid rule on a local grid of ±12σ."""
    d = mu.shape[1]
    logw = np.log(w)
    z = np.linspace(-_TAIL, _TAIL, int(2 * _TAIL * per_sigma) + 1)  # in units of σ
    dz = z[1] - z[0]
    zz = np.stack(np.meshgrid(*([z] * d), indexing="ij"), axis=-1).reshape(-1, d)
    log_phi = -0.5 * (zz**2).sum(-1) - 0.5 * d * math.log(2 * math.pi)  # density of z, per σ^d
    phi_dz = np.exp(log_phi) * dz**d  # quadrature weights for E_z[...]
    h = 0.0
    for i in range(len(mu)):
        t = mu[i] + sigma * zz
        lg = np.empty(len(t))
        for a in range(0, len(t), 8192):
            lg[a : a + 8192] = _log_mixture(t[a : a + 8192], mu, logw, sigma)
        h -= w[i] * float(np.dot(phi_dz, lg))
    return h


def mixture_entropy_2d(means, weights, sigma: float, tol_bits: float = 1e-7) -> float:
    """h(Σ_i w_i N(μ_i, σ²I₂)) in bits by tensor-product quadrature, with an error check.

    h = −Σ_i w_i E_{t~N(μ_i,σ²I)}[log2 g(t)]; each expectation is a trapezoid sum on a ±12σ grid around
    μ_i (exponentially accurate for integrands smooth on the scale σ). The sum is computed with 6 and
    8 nodes per σ; if they differ by more than `tol_bits` a ValueError is raised.
    """
    mu, w = _normalise(means, weights, 2)
    coarse = _grid_entropy(mu, w, sigma, 6) / LN2
    fine = _grid_entropy(mu, w, sigma, 8) / LN2
    if abs(fine - coarse) > tol_bits:
        raise ValueError(f"2-D mixture entropy did not converge: {coarse} vs {fine} bits")
    return fine


# ------------------------------------------------------------------------------------------------
# The linear-Gaussian channel of Shwartz-Ziv, Painsky & Tishby (2019, §4.2): eq. 7 exactly


@torch.no_grad()
def exact_linear_gaussian_mi(w_star: Tensor, dW: Tensor, sigma_t2: Tensor | float, sigma_z2: float = 0.0,
                             eps: float = 0.0) -> Tensor:
    """The eq. 7 quantity, in bits per seed: ½ log2 |W*ᵀW* + δWᵀδW + sI| / |δWᵀδW + sI|, s = σ_z²/σ_T² + eps.

    This is I(W*ᵀT + δWᵀT + Z; W*ᵀT) for T ~ N(0, σ_T² I) when the noise δWᵀT + Z is independent of
    the signal W*ᵀT (exactly so when W*ᵀδW = 0; asymptotically for large d_k by Prop. 2).  Both
    determinants were divided by σ_T^{2 d_out}.  w_star, dW: [S, d_in, d_out] → Tensor[S] (float64).
    """
    ws, d = w_star.to(torch.float64), dW.to(torch.float64)
    s = (float(sigma_z2) / _per_seed(sigma_t2, ws) + eps)[:, None, None]
    eye = torch.eye(ws.shape[-1], dtype=torch.float64, device=ws.device)
    noise = d.transpose(-1, -2) @ d + s * eye
    total = ws.transpose(-1, -2) @ ws + noise
    return 0.5 * (torch.linalg.slogdet(total).logabsdet - torch.linalg.slogdet(noise).logabsdet) / LN2



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
