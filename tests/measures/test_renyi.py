"""Matrix-based Rényi α-entropy and MI: exact limits, invariances, and a float64 numpy restatement of the
formulas of Giraldo, Rao & Príncipe (2014) and Yu et al. (2019)."""
import math

import numpy as np
import pytest
import torch

from ibtui.measures.renyi import (auto_width, entropy, gram, joint_entropy, label_entropy, mutual_information,
                                  renyi_mi, silverman_width)


# --- a float64 numpy restatement, written from the papers' formulas (loops on purpose) ---
def _ref_gram(x, sigma):
    n = x.shape[0]
    k = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            k[i, j] = math.exp(-np.sum((x[i] - x[j]) ** 2) / (2 * sigma ** 2))
    a = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            a[i, j] = k[i, j] / (n * math.sqrt(k[i, i] * k[j, j]))
    return a


def _ref_entropy(a, alpha):
    lam = np.clip(np.linalg.eigvalsh(a), 0, None)
    return math.log2(np.sum(lam ** alpha)) / (1 - alpha)


def _ref_joint(a, b, alpha):
    ab = a * b
    return _ref_entropy(ab / np.trace(ab), alpha)


def _ref_mi(a, b, alpha):
    return _ref_entropy(a, alpha) + _ref_entropy(b, alpha) - _ref_joint(a, b, alpha)


def _points(seeds, n, d, seed=0):
    return torch.randn(seeds, n, d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def test_identical_points_have_zero_entropy_and_information():
    h = torch.ones(2, 40, 7)
    a = gram(h, 0.3)
    assert torch.allclose(entropy(a), torch.zeros(2, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(renyi_mi(h, torch.arange(40) % 2)["h_t"], torch.zeros(2, dtype=torch.float64), atol=1e-9)
    x = gram(_points(1, 40, 5), 1.0)
    assert torch.allclose(mutual_information(x.expand(2, -1, -1), a), torch.zeros(2, dtype=torch.float64), atol=1e-9)


def test_well_separated_points_with_a_narrow_kernel_reach_log2_n():
    n = 64
    h = 10.0 * torch.arange(n, dtype=torch.float64).reshape(1, n, 1).expand(3, n, 2)  # 10 apart, σ = 0.1
    a = gram(h, 0.1)
    assert torch.allclose(entropy(a), torch.full((3,), math.log2(n), dtype=torch.float64), atol=1e-9)
    # a layer that keeps every input apart carries all of X's information: I(X;T) = S(A_X) = log2 n
    assert torch.allclose(mutual_information(a, a), torch.full((3,), math.log2(n), dtype=torch.float64), atol=1e-9)


def test_scaling_the_layer_and_the_width_together_changes_nothing():
    h = _points(2, 50, 6, seed=1)
    y = torch.arange(50) % 3
    x = gram(_points(1, 50, 4, seed=2), 1.5)
    base = renyi_mi(h, y, sigma=0.8, x_gram=x)
    scaled = renyi_mi(37.0 * h, y, sigma=37.0 * 0.8, x_gram=x)
    for key in ("h_t", "mi_ty", "mi_xt"):
        assert torch.allclose(base[key], scaled[key], atol=1e-9)
    # the default width scales with the layer's spread, so it needs no help
    auto, auto_scaled = renyi_mi(h, y, x_gram=x), renyi_mi(0.01 * h + 5.0, y, x_gram=x)
    for key in ("h_t", "mi_ty", "mi_xt"):
        assert torch.allclose(auto[key], auto_scaled[key], atol=1e-9)


def test_mutual_information_is_symmetric():
    a = gram(_points(3, 45, 4, seed=3), 1.0)
    b = gram(_points(3, 45, 9, seed=4), 2.0)
    assert torch.allclose(mutual_information(a, b), mutual_information(b, a), atol=1e-10)


@pytest.mark.parametrize("alpha", [1.01, 2.0, 0.5])
def test_agrees_with_a_float64_reference_of_the_papers_formulas(alpha):
    x = _points(1, 30, 5, seed=5)[0].numpy()
    t = _points(1, 30, 3, seed=6)[0].numpy()
    sx, st = 1.3, 0.9
    ax, at = _ref_gram(x, sx), _ref_gram(t, st)
    a_x, a_t = gram(torch.from_numpy(x)[None], sx), gram(torch.from_numpy(t)[None], st)
    assert np.allclose(a_x[0].numpy(), ax, atol=1e-14)
    assert entropy(a_t, alpha).item() == pytest.approx(_ref_entropy(at, alpha), abs=1e-9)
    assert joint_entropy(a_x, a_t, alpha).item() == pytest.approx(_ref_joint(ax, at, alpha), abs=1e-9)
    assert mutual_information(a_x, a_t, alpha).item() == pytest.approx(_ref_mi(ax, at, alpha), abs=1e-9)


def test_label_information_agrees_with_the_one_hot_gaussian_gram_at_a_narrow_width():
    # The class-indicator Gram is the Gaussian kernel on one-hot labels as its width → 0 (exp(−1/σ²) between
    # classes): the reference builds that Gram and decomposes it whole; renyi_mi decomposes class blocks.
    gen = torch.Generator().manual_seed(7)
    y = torch.randint(0, 4, (36,), generator=gen)
    t = _points(1, 36, 3, seed=8)[0].numpy()
    ay = _ref_gram(np.eye(4)[y.numpy()], 0.05)
    at = _ref_gram(t, 1.1)
    mi = renyi_mi(torch.from_numpy(t)[None], y, alpha=1.01, sigma=1.1)
    assert mi["mi_ty"].item() == pytest.approx(_ref_mi(at, ay, 1.01), abs=1e-9)
    assert label_entropy(y).item() == pytest.approx(_ref_entropy(ay, 1.01), abs=1e-9)


def test_label_entropy_of_balanced_classes_is_log2_classes_for_every_alpha():
    y = torch.arange(40) % 4
    for alpha in (0.5, 1.0, 1.01, 2.0):
        assert label_entropy(y, alpha).item() == pytest.approx(2.0, abs=1e-12)


def test_separated_classes_carry_all_label_information():
    # every class a tight cluster far from the others: I(T;Y) = H(Y) = log2 4
    y = torch.arange(48) % 4
    h = (50.0 * y.double())[None, :, None] + 1e-3 * _points(2, 48, 2, seed=9)
    mi = renyi_mi(h, y, sigma=1.0)
    assert torch.allclose(mi["mi_ty"], torch.full((2,), 2.0, dtype=torch.float64), atol=1e-6)


def test_shannon_limit_and_silverman_width():
    a = gram(_points(1, 40, 3, seed=10), 1.0)
    assert entropy(a, 1.0001).item() == pytest.approx(entropy(a, 1.0).item(), abs=1e-3)
    # Silverman's rule as Yu et al. 2019 write it, with Tapia & Estévez 2020's γ = 0.8 and √d, and the data scale
    assert silverman_width(1000, 500) == pytest.approx(0.8 * math.sqrt(500) * 1000 ** (-1 / 504), rel=1e-15)
    h = torch.tensor([[[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [2.0, 4.0]]])  # marginal stds 1 and 2
    assert auto_width(h).item() == pytest.approx(0.8 * math.sqrt(2.5) * math.sqrt(2) * 4 ** (-1 / 6), rel=1e-12)


def test_batched_seeds_equal_one_at_a_time():
    h = _points(3, 40, 5, seed=11)
    y = torch.arange(40) % 2
    x = gram(_points(1, 40, 4, seed=12), 1.0)
    together = renyi_mi(h, y, x_gram=x)
    for i in range(3):
        alone = renyi_mi(h[i:i + 1], y, x_gram=x)
        for key in together:
            assert together[key][i].item() == pytest.approx(alone[key].item(), abs=1e-10)
