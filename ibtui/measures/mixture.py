"""The exact (quadrature) entropy of a 1-D Gaussian mixture: the "exact" estimator of a noisy 1-unit layer.

The noisy-network view (Goldfeld et al. 2019) makes every layer T = S + Z a Gaussian mixture; for a
layer of one unit its entropy is a 1-D integral, computed here by deterministic quadrature (numpy/scipy,
on the host, once per seed and snapshot). The tests keep the same computation as the oracle of the
Monte Carlo and pairwise estimators (tests/oracles.py adds the 2-D case). Entropies are in bits.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import integrate

from ibtui.measures.discrete import LN2


# Integration reaches this many σ beyond the outermost means (tail mass ≈ e^{-72}).
_TAIL = 12.0
# Extra breakpoints around every mean, in units of σ, so quad never steps over a narrow peak.
_BREAKS = np.array([-8.0, -5.0, -3.0, -1.5, 0.0, 1.5, 3.0, 5.0, 8.0])


def _normalise(means: np.ndarray, weights: np.ndarray | None, d: int) -> tuple[np.ndarray, np.ndarray]:
    mu = np.asarray(means, dtype=np.float64).reshape(-1, d)
    w = np.full(len(mu), 1.0 / len(mu)) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if w.shape[0] != mu.shape[0] or np.any(w < 0) or w.sum() <= 0:
        raise ValueError("weights must be non-negative, one per mean, not all zero")
    keep = w > 0
    return mu[keep], w[keep] / w.sum()


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
