"""Sample-propagation estimator (sp.py) against closed forms and quadrature (mixture.py), within 3 standard errors."""
import math

import numpy as np
import pytest
import torch

from ibtui.measures.mixture import mixture_entropy_1d
from oracles import mixture_entropy_2d
from ibtui.measures.sp import mixture_entropy_mc, sp_mutual_information


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _within_3se(est, se, exact, floor=1e-5):
    """|est − exact| ≤ 3·se (+ a float32 floor), per seed."""
    est, se = est.double(), se.double()
    assert torch.all(se > 0) or floor > 0
    assert torch.all((est - exact).abs() <= 3 * se + floor), (est, se, exact)


def test_mc_single_gaussian_closed_form():
    beta, d = 0.1, 3
    h, se = mixture_entropy_mc(torch.full((4, 1, d), 0.2), beta, n_mc=20000, generator=_gen(0))
    exact = d / 2 * math.log2(2 * math.pi * math.e * beta**2)
    _within_3se(h, se, exact, floor=0)
    assert torch.all(se < 0.02)


def test_mc_1d_weighted_mixture_matches_quadrature():
    means, w, beta = [-0.2, 0.0, 0.05, 0.4], [0.1, 0.4, 0.3, 0.2], 0.1
    c = torch.tensor(means).view(1, 4, 1).expand(3, 4, 1)
    h, se = mixture_entropy_mc(c, beta, n_mc=4000, weights_mask=torch.tensor(w), generator=_gen(1))
    _within_3se(h, se, mixture_entropy_1d(means, w, beta), floor=0)
    assert torch.all(se < 0.02)


def test_mc_2d_mixture_matches_quadrature():
    rng = np.random.default_rng(2)
    means, beta = rng.uniform(-0.3, 0.3, size=(5, 2)), 0.1
    c = torch.tensor(means, dtype=torch.float32).unsqueeze(0).expand(2, 5, 2)
    h, se = mixture_entropy_mc(c, beta, n_mc=3000, generator=_gen(2))
    _within_3se(h, se, mixture_entropy_2d(means, None, beta), floor=0)
    assert torch.all(se < 0.02)


def test_mc_mask_per_seed_selects_submixture():
    means, beta = [0.0, 0.15, 0.5], 0.1
    c = torch.tensor(means).view(1, 3, 1).expand(2, 3, 1)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    h, se = mixture_entropy_mc(c, beta, n_mc=4000, weights_mask=mask, generator=_gen(3))
    _within_3se(h[:1], se[:1], mixture_entropy_1d(means[:2], None, beta), floor=0)
    _within_3se(h[1:], se[1:], mixture_entropy_1d(means, None, beta), floor=0)


def test_sp_first_layer_conditional_entropy_is_noise_entropy():
    beta, d = 0.05, 3
    s = torch.rand(2, 50, 1, d, generator=_gen(4)) * 2 - 1
    out = sp_mutual_information(s.expand(2, 50, 4, d), None, beta, n_mc=200, generator=_gen(5))
    _within_3se(out["h_t_x"], out["h_t_x_se"], d / 2 * math.log2(2 * math.pi * math.e * beta**2), floor=0)
    assert set(out) == {"mi_xt", "mi_xt_se", "h_t", "h_t_se", "h_t_x", "h_t_x_se"}


def test_sp_separated_inputs_give_log2_m_and_h_y():
    beta, m = 0.01, 8
    c = torch.arange(m, dtype=torch.float32).view(1, m, 1, 1).expand(3, m, 2, 1)  # 1 apart = 100 β
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2])  # p = (1/2, 1/4, 1/4): H(Y) = 1.5
    out = sp_mutual_information(c, labels, beta, n_mc=10, generator=_gen(6))
    torch.testing.assert_close(out["mi_xt"], torch.full((3,), 3.0), atol=1e-4, rtol=0)
    torch.testing.assert_close(out["mi_ty"], torch.full((3,), 1.5), atol=1e-4, rtol=0)


def _exact_1d(cond, labels, beta):
    """I(X;T), I(T;Y) by quadrature for 1-D cond centres [m, k] (inputs equiprobable)."""
    m = cond.shape[0]
    h_t = mixture_entropy_1d(cond.ravel(), None, beta)
    h_tx = np.mean([mixture_entropy_1d(cond[i], None, beta) for i in range(m)])
    h_ty = sum((labels == y).mean() * mixture_entropy_1d(cond[labels == y].ravel(), None, beta) for y in np.unique(labels))
    return h_t - h_tx, h_t - h_ty


def test_sp_deeper_layer_1d_matches_quadrature():
    cond = np.array([[0.0, 0.1], [0.05, 0.5], [0.45, 0.9]])
    labels = np.array([0, 0, 1])
    beta = 0.1
    i_xt, i_ty = _exact_1d(cond, labels, beta)
    c = torch.tensor(cond, dtype=torch.float32).view(1, 3, 2, 1).expand(2, 3, 2, 1)
    out = sp_mutual_information(c, torch.tensor(labels), beta, n_mc=20000, generator=_gen(7))
    _within_3se(out["mi_xt"], out["mi_xt_se"], i_xt)
    _within_3se(out["mi_ty"], out["mi_ty_se"], i_ty)
    assert torch.all(out["mi_xt_se"] < 0.01) and torch.all(out["mi_ty_se"] < 0.01)


def test_sp_deeper_layer_2d_matches_quadrature():
    rng = np.random.default_rng(8)
    cond = rng.uniform(-0.2, 0.2, size=(3, 2, 2))  # m=3 inputs, k=2 centres each, d=2
    beta = 0.1
    h_t = mixture_entropy_2d(cond.reshape(-1, 2), None, beta)
    h_tx = np.mean([mixture_entropy_2d(cond[i], None, beta) for i in range(3)])
    c = torch.tensor(cond, dtype=torch.float32).unsqueeze(0)
    out = sp_mutual_information(c, None, beta, n_mc=10000, generator=_gen(9))
    _within_3se(out["mi_xt"], out["mi_xt_se"], h_t - h_tx)
    _within_3se(out["h_t"], out["h_t_se"], h_t)


def test_sp_subsampled_inputs_match_quadrature():
    rng = np.random.default_rng(10)
    cond = rng.uniform(-0.5, 0.5, size=(16, 2))
    labels = (np.arange(16) % 2).astype(np.int64)
    beta = 0.05
    i_xt, i_ty = _exact_1d(cond, labels, beta)
    c = torch.tensor(cond, dtype=torch.float32).view(1, 16, 2, 1).expand(3, 16, 2, 1)
    out = sp_mutual_information(c, torch.tensor(labels), beta, n_mc=400, generator=_gen(11), n_points=8)
    _within_3se(out["mi_xt"], out["mi_xt_se"], i_xt)
    _within_3se(out["mi_ty"], out["mi_ty_se"], i_ty)


def test_sp_chunking_does_not_change_result():
    c = torch.rand(2, 30, 3, 2, generator=_gen(12))
    labels = torch.arange(30) % 3
    a = sp_mutual_information(c, labels, 0.1, n_mc=5, generator=_gen(13))
    b = sp_mutual_information(c, labels, 0.1, n_mc=5, generator=_gen(13), chunk_size=7)
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=0)


@pytest.mark.parametrize("beta", [0.01, 0.005, 0.1])
def test_pooled_sums_by_attention_equal_exact_pairwise_sums(beta):
    """The CPU path (fused attention in float64) gives the exact-distance sums of the pooled mixtures."""
    from ibtui.measures.kde import gaussian_kernel_log_sums
    from ibtui.measures.sp import pooled_log_sums

    g = torch.Generator().manual_seed(3)
    s, m, k, d, n_mc = 3, 300, 4, 5, 2
    centers = torch.tanh(torch.randn(s, m, 1, d, generator=g)) + 0.003 * torch.randn(s, m, k, d, generator=g)
    labels = torch.randint(0, 3, (m,), generator=g)
    idx = torch.arange(0, m, 3)
    base = centers[:, idx, 0:1].expand(-1, -1, n_mc, -1)
    z = torch.randn(base.shape, generator=g)
    t = (base + beta * z).reshape(s, -1, d)
    inv = 1.0 / (2 * beta**2)
    ref = (beta * z).square().sum(-1).mul(-inv).reshape(s, -1)
    groups = dict(point_groups=labels[idx].repeat_interleave(n_mc), centre_groups=labels.repeat_interleave(k), n_groups=3)
    total, own = pooled_log_sums(t, centers.reshape(s, m * k, d), inv, ref, None, groups)
    exact_total, exact_own = gaussian_kernel_log_sums(t.double(), centers.reshape(s, m * k, d).double(), [inv], **groups)
    assert torch.allclose(total.double(), exact_total[0], atol=2e-5, rtol=0)
    assert torch.allclose(own.double(), exact_own[0], atol=2e-5, rtol=0)
    plain, none = pooled_log_sums(t, centers.reshape(s, m * k, d), inv, ref, None, {})
    assert none is None and torch.allclose(plain, total)


def _repeat(cond, beta, n_mc, reps, points=None, seed=100):
    """SP I(X;T) of cond [m, k] (1-D centres) `reps` times with fresh Monte Carlo draws, and with a fresh subset of
    `points` inputs when given (each repetition a "seed" of one call, its inputs in a random order and the first
    `points` of them averaged over): the estimates and their reported SEs, float64 numpy [reps]."""
    m, k = cond.shape
    g = _gen(seed)
    c = torch.tensor(cond, dtype=torch.float64)
    if points is not None:
        c = torch.stack([c[torch.randperm(m, generator=g)] for _ in range(reps)])
    else:
        c = c.expand(reps, m, k)
    idx = None if points is None else torch.arange(points)
    out = sp_mutual_information(c.unsqueeze(-1), None, beta, n_mc=n_mc, generator=g, points=idx)
    return out["mi_xt"].numpy(), out["mi_xt_se"].numpy()


def test_sp_se_counts_the_sampling_of_a_fixed_input_subset():
    """Over repeated draws of the inputs (without replacement, 12 of 40) and of the Monte Carlo noise, the
    estimates spread as the reported SE says, and they centre on the quadrature MI of all 40 inputs."""
    rng = np.random.default_rng(21)
    cond = rng.uniform(-0.6, 0.6, size=(40, 1)) + rng.normal(0.0, 0.04, size=(40, 2))  # k = 2 centres an input
    labels = (np.arange(40) % 2).astype(np.int64)
    beta = 0.05
    i_xt, _ = _exact_1d(cond, labels, beta)
    est, se = _repeat(cond, beta, n_mc=4, reps=400, points=12)
    spread = est.std(ddof=1)
    # The SE of a standard deviation from 400 draws is ~3.5 %: a ratio in [0.8, 1.25] is 5 such SEs either way.
    assert 0.8 <= np.sqrt(np.mean(se**2)) / spread <= 1.25, (np.sqrt(np.mean(se**2)), spread)
    assert abs(est.mean() - i_xt) <= 3 * spread / np.sqrt(len(est)) + 1e-3, (est.mean(), i_xt)
    # The inputs' own spread dominates: a Monte Carlo-only SE (all inputs) is far smaller.
    est_all, se_all = _repeat(cond, beta, n_mc=4, reps=400)
    assert np.mean(se_all) < 0.5 * np.mean(se)
    assert 0.8 <= np.sqrt(np.mean(se_all**2)) / est_all.std(ddof=1) <= 1.25
    assert abs(est_all.mean() - i_xt) <= 3 * est_all.std(ddof=1) / 20 + 1e-3


def test_sp_with_every_input_as_its_own_subset_has_only_monte_carlo_error():
    """points = all m inputs is the all-inputs estimate: the finite-population correction removes the inputs'
    spread from the SE, so the two calls report the same number."""
    cond = np.random.default_rng(22).uniform(-0.5, 0.5, size=(20, 3))
    c = torch.tensor(cond).view(1, 20, 3, 1)
    labels = torch.arange(20) % 2
    a = sp_mutual_information(c, labels, 0.05, n_mc=6, generator=_gen(1))
    b = sp_mutual_information(c, labels, 0.05, n_mc=6, generator=_gen(1), points=torch.arange(20))
    assert set(a) == set(b) and all(torch.allclose(a[key], b[key], rtol=1e-12, atol=0) for key in a)
