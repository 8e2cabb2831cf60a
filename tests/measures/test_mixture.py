"""Quadrature entropies (mixture.py and the 2-D oracle of tests/oracles.py) against closed forms and each other."""
import math

import numpy as np
import pytest

from ibtui.measures.mixture import mixture_entropy_1d
from oracles import _grid_entropy, gaussian_entropy_bits, mixture_entropy_2d


def _h_bits(p):
    p = np.asarray(p, dtype=float)
    return float(-(p * np.log2(p)).sum())


def test_gaussian_entropy_closed_form():
    assert gaussian_entropy_bits(0.01**2) == pytest.approx(0.5 * math.log2(2 * math.pi * math.e * 1e-4), abs=1e-12)
    assert gaussian_entropy_bits(0.01**2) == pytest.approx(-4.596760604594, abs=1e-9)  # h(Z_1) per unit at β = 0.01
    cov = np.array([[2.0, 0.5], [0.5, 1.0]])
    expect = 0.5 * math.log2((2 * math.pi * math.e) ** 2 * np.linalg.det(cov))
    assert gaussian_entropy_bits(cov) == pytest.approx(expect, abs=1e-12)


@pytest.mark.parametrize("sigma", [0.01, 0.1, 1.0])
def test_1d_single_and_separated(sigma):
    hz = gaussian_entropy_bits(sigma**2)
    assert mixture_entropy_1d([0.3], None, sigma) == pytest.approx(hz, abs=1e-9)
    far = [0.0, 60 * sigma, 200 * sigma]  # overlaps below e^-450
    assert mixture_entropy_1d(far, None, sigma) == pytest.approx(hz + math.log2(3), abs=1e-8)
    w = [0.5, 0.3, 0.2]
    assert mixture_entropy_1d(far, w, sigma) == pytest.approx(hz + _h_bits(w), abs=1e-8)
    # duplicated means are one component: 3+1 split → H(1/4)
    assert mixture_entropy_1d([0, 0, 0, 100 * sigma], None, sigma) == pytest.approx(hz + _h_bits([0.75, 0.25]), abs=1e-8)


def test_1d_overlapping_matches_independent_grid():
    means, w, sigma = np.array([-1.0, -0.99, 0.3, 0.31, 0.5]), np.array([0.1, 0.2, 0.3, 0.25, 0.15]), 0.02
    quad = mixture_entropy_1d(means, w, sigma)
    grid = _grid_entropy(means.reshape(-1, 1), w, sigma, 8) / math.log(2)
    assert quad == pytest.approx(grid, abs=1e-9)


def test_2d_separable_equals_1d_plus_gaussian():
    # means on the x-axis: g(x, y) = g1(x) N(y; 0, σ²), so h2 = h1 + h(N(0, σ²)) exactly
    xs, w, sigma = [0.0, 0.05, 0.3], [0.2, 0.5, 0.3], 0.05
    h2 = mixture_entropy_2d(np.stack([xs, np.zeros(3)], axis=1), w, sigma)
    assert h2 == pytest.approx(mixture_entropy_1d(xs, w, sigma) + gaussian_entropy_bits(sigma**2), abs=1e-8)


def test_2d_separated_and_single():
    sigma = 0.1
    h2z = gaussian_entropy_bits(np.eye(2) * sigma**2)
    assert mixture_entropy_2d([[0.5, -0.5]], None, sigma) == pytest.approx(h2z, abs=1e-9)
    w = [0.25, 0.25, 0.5]
    means = [[0, 0], [5, 0], [0, 5]]
    assert mixture_entropy_2d(means, w, sigma) == pytest.approx(h2z + 1.5, abs=1e-8)
