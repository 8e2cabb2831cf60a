"""Exact (quadrature) entropies of Gaussians and isotropic Gaussian mixtures: the oracles for the estimators.

The noisy-network view (Goldfeld et al. 2019; papers.md §1) makes every layer T = S + Z a Gaussian
mixture, so the Monte Carlo and pairwise estimators can be checked against a number computed by
deterministic integration. These functions are numpy/scipy only and meant for tests and small toys,
not for the training loop. All entropies are differential entropies in bits.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import integrate
from scipy.special import logsumexp

from ibtui.measures.discrete import LN2


# Integration reaches this many σ beyond the outermost means (tail mass ≈ e^{-72}).
_TAIL = 12.0
# Extra breakpoints around every mean, in units of σ, so quad never steps over a narrow peak.
_BREAKS = np.array([-8.0, -5.0, -3.0, -1.5, 0.0, 1.5, 3.0, 5.0, 8.0])


def gaussian_entropy_bits(cov: np.ndarray | float) -> float:
    """h(N(μ, Σ)) = ½ log2 det(2πe Σ) bits (closed form); a scalar is a 1-D variance."""
    c = np.atleast_2d(np.asarray(cov, dtype=np.float64))
    sign, logdet = np.linalg.slogdet(2.0 * math.pi * math.e * c)
    if sign <= 0:
        raise ValueError("covariance must be positive definite")
    return 0.5 * logdet / LN2


def _normalise(means: np.ndarray, weights: np.ndarray | None, d: int) -> tuple[np.ndarray, np.ndarray]:
    mu = np.asarray(means, dtype=np.float64).reshape(-1, d)
    w = np.full(len(mu), 1.0 / len(mu)) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if w.shape[0] != mu.shape[0] or np.any(w < 0) or w.sum() <= 0:
        raise ValueError("weights must be non-negative, one per mean, not all zero")
    keep = w > 0
    return mu[keep], w[keep] / w.sum()


def _log_mixture(t: np.ndarray, mu: np.ndarray, logw: np.ndarray, sigma: float) -> np.ndarray:
    """ln g(t) for points t [P, d] of g = Σ w_i N(μ_i, σ²I)."""
    d = mu.shape[1]
    sq = ((t[:, None, :] - mu[None, :, :]) ** 2).sum(-1)
    return logsumexp(logw[None, :] - sq / (2 * sigma**2), axis=1) - 0.5 * d * math.log(2 * math.pi * sigma**2)


def mixture_entropy_1d(means, weights, sigma: float) -> float:
    """h(Σ_i w_i N(μ_i, σ²)) in bits by adaptive quadrature of −∫ g ln g (scipy.integrate.quad).

    The range is [min μ − 12σ, max μ + 12σ], cut at every mean and at μ ± (1.5, 3, 5, 8)σ, so that no
    narrow component falls between quadrature nodes. `weights` None means equal weights.
    """
    mu, w = _normalise(means, weights, 1)
    logw = np.log(w)
    cuts = np.unique((mu[:, :1] + sigma * _BREAKS[None, :]).ravel())
    lo, hi = mu.min() - _TAIL * sigma, mu.max() + _TAIL * sigma
    edges = np.unique(np.concatenate([[lo, hi], cuts]))

    mu1, inv, const = mu[:, 0], 0.5 / sigma**2, 0.5 * math.log(2 * math.pi * sigma**2)

    def integrand(x: float) -> float:  # −g ln g at x, with a scalar-fast logsumexp
        a = logw - inv * (x - mu1) ** 2
        top = a.max()
        lg = top + math.log(np.exp(a - top).sum()) - const
        return -math.exp(lg) * lg

    total = 0.0
    for a, b in zip(edges[:-1], edges[1:]):
        val, _ = integrate.quad(integrand, a, b, epsabs=1e-13, epsrel=1e-11, limit=200)
        total += val
    return total / LN2


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
