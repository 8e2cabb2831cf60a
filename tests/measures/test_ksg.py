"""KSG estimator 1 against exact mutual informations: correlated Gaussians, a two-class Gaussian mixture,
perfectly separated classes (where the estimator has a closed form)."""
import math

import numpy as np
import pytest
import torch
from scipy.special import digamma

from ibtui.measures.ksg import jittered, ksg_layer, ksg_mi, ksg_mi_discrete, max_norm_distances

LN2 = math.log(2)


def _gaussians(rho: float, seeds: int, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    z = torch.randn(seeds, n, 2, dtype=torch.float64, generator=gen)
    return z[..., :1], rho * z[..., :1] + math.sqrt(1 - rho ** 2) * z[..., 1:]


@pytest.mark.parametrize("rho", [0.0, pytest.param(0.3, marks=pytest.mark.slow), 0.6,
                                 pytest.param(0.9, marks=pytest.mark.slow), 0.99])
def test_correlated_gaussians_within_the_estimators_error(rho):
    # I = −½ log(1 − ρ²). At N = 1000, k = 3 Kraskov et al. (2004, Fig. 4) find the bias of estimator 1 on
    # Gaussians below 0.01 nats; the spread between samples is ~0.03–0.05 bits. 16 independent samples:
    # the mean must be within 3 standard errors plus 0.015 bits (that bias) of the exact value.
    exact = -0.5 * math.log(1 - rho ** 2) / LN2
    a, b = _gaussians(rho, 16, 1000, torch.Generator().manual_seed(0))
    est = ksg_mi(a, b, k=3)
    se = est.std().item() / 4
    assert abs(est.mean().item() - exact) < 3 * se + 0.015, (rho, est.mean().item(), exact)
    assert est.std().item() < 0.06


def test_batched_seeds_equal_one_at_a_time_and_symmetry():
    a, b = _gaussians(0.7, 3, 400, torch.Generator().manual_seed(1))
    together = ksg_mi(a, b)
    alone = torch.cat([ksg_mi(a[i:i + 1], b[i:i + 1]) for i in range(3)])
    assert torch.allclose(together, alone, atol=1e-12)
    assert torch.allclose(ksg_mi(a, b), ksg_mi(b, a), atol=1e-12)  # the estimator is symmetric in A and B


def test_invariant_to_the_units_of_each_variable():
    # Each variable is rescaled to unit variance before the max-norm mixes them (Kraskov et al. 2004), so a
    # change of units or an offset of either variable leaves the estimate unchanged.
    a, b = _gaussians(0.8, 2, 500, torch.Generator().manual_seed(2))
    assert torch.allclose(ksg_mi(a, b), ksg_mi(5.0 * a + 3.0, 0.01 * b), atol=1e-9)


def test_separated_classes_have_the_closed_form_and_approach_log2_classes():
    # Classes far apart: every point's k nearest same-class neighbours are also its nearest points overall, so
    # m_i = k and I = ψ(N) − ⟨ψ(N_y)⟩ exactly (Ross 2014's estimator), → log2 C as N grows.
    gen = torch.Generator().manual_seed(3)
    classes, per = 4, 250
    y = torch.arange(classes).repeat_interleave(per)
    h = (100.0 * y.double())[None, :, None] + torch.randn(2, classes * per, 3, dtype=torch.float64, generator=gen)
    est = ksg_mi_discrete(h, y, k=3)
    closed = (digamma(classes * per) - digamma(per)) / LN2
    assert torch.allclose(est, torch.full_like(est, closed), atol=1e-12)
    assert closed == pytest.approx(math.log2(classes), abs=0.01)


def test_two_class_gaussian_mixture_against_quadrature():
    # Y ∈ {0, 1} equiprobable, T | Y ~ N(±μ, 1): I(T;Y) = h(T) − h(T|Y) by quadrature on a fine grid.
    mu, n, seeds = 1.0, 1000, 8
    grid = np.linspace(-12, 12, 200001)
    phi = lambda x, m: np.exp(-0.5 * (x - m) ** 2) / math.sqrt(2 * math.pi)  # noqa: E731
    p = 0.5 * phi(grid, -mu) + 0.5 * phi(grid, mu)
    h_t = -np.sum(p * np.log(p)) * (grid[1] - grid[0])  # tails below 1e-30: the Riemann sum is the integral
    exact = (h_t - 0.5 * math.log(2 * math.pi * math.e)) / LN2
    gen = torch.Generator().manual_seed(4)
    y = torch.arange(2).repeat(n // 2)
    h = (2 * y.double() - 1)[None, :, None] * mu + torch.randn(seeds, n, 1, dtype=torch.float64, generator=gen)
    est = ksg_mi_discrete(h, y, k=3)
    se = est.std().item() / math.sqrt(seeds)
    assert abs(est.mean().item() - exact) < 3 * se + 0.01, (est.mean().item(), exact)


def test_independent_labels_give_about_zero():
    gen = torch.Generator().manual_seed(5)
    y = torch.randint(0, 3, (900,), generator=gen)
    h = torch.randn(8, 900, 2, dtype=torch.float64, generator=gen)
    est = ksg_mi_discrete(h, y)
    assert abs(est.mean().item()) < 0.02


def test_small_classes_use_fewer_neighbours_and_singletons_are_left_out():
    y = torch.tensor([0] * 50 + [1] * 2 + [2])
    h = torch.randn(1, 53, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    assert torch.isfinite(ksg_mi_discrete(h, y, k=3)).all()


def test_one_pass_over_a_layer_gives_both_estimates():
    # ksg_layer (the probe's path: the inputs' distances kept, the layer's computed once for both) equals the two
    # estimators called one by one
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(1, 300, 4, dtype=torch.float64, generator=gen)
    y = torch.randint(0, 3, (300,), generator=gen)
    h = torch.tanh(x[..., :2].expand(2, -1, -1) + 0.3 * torch.randn(2, 300, 2, dtype=torch.float64, generator=gen))
    dx = max_norm_distances(jittered(x, seed=0), 0, 300)
    xt, ty = ksg_layer(h, y, dx)
    assert torch.allclose(xt, ksg_mi(x.expand(2, -1, -1), h), atol=1e-12)
    assert torch.allclose(ty, ksg_mi_discrete(h, y), atol=1e-12)
