"""Kolchinsky–Tracey bounds (kde_mi) against closed-form cases and a float64 numpy restatement of ibsgd."""
import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp

from ibtui.measures.kde import kde_mi

KEYS = ("upper_xt", "lower_xt", "upper_ty", "lower_ty")


def _clusters(centres, sizes, jitter, gen):
    """Points in well-separated clusters: [1, N, d] and their cluster index [N]."""
    c = torch.as_tensor(centres, dtype=torch.float32)
    idx = torch.repeat_interleave(torch.arange(len(sizes)), torch.as_tensor(sizes))
    pts = c[idx] + jitter * torch.randn(len(idx), c.shape[1], generator=gen)
    return pts.unsqueeze(0), idx


# --- a float64 numpy restatement of ibsgd kde.py (entropy_estimator_kl / _bd, kde_condentropy) ---
def _h_kl(x, var):
    n, d = x.shape
    dists = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    lprobs = logsumexp(-dists / (2 * var), axis=1) - np.log(n) - (d / 2) * np.log(2 * np.pi * var)
    return d / 2 - lprobs.mean()


def _h_bd(x, var):
    return _h_kl(x, 4 * var) + np.log(0.25) * x.shape[1] / 2


def _ibsgd_mi(x, y, var):
    h_cond_x = (x.shape[1] / 2) * (np.log(2 * np.pi * var) + 1)
    out = {}
    for name, hf in (("upper", _h_kl), ("lower", _h_bd)):
        h = hf(x, var)
        h_y = sum((y == c).mean() * hf(x[y == c], var) for c in np.unique(y))
        out[f"{name}_xt"] = (h - h_cond_x) / math.log(2)
        out[f"{name}_ty"] = (h - h_y) / math.log(2)
    return out


def test_identical_points_give_zero():
    h = torch.full((2, 64, 3), 0.3)
    labels = torch.arange(64) % 2
    out = kde_mi(h, labels, noise_var=1e-3)
    for k in KEYS:
        torch.testing.assert_close(out[k], torch.zeros(2), atol=1e-6, rtol=0)


@pytest.mark.parametrize("k", [2, 4, 8])
def test_separated_equal_clusters_give_log2_k(k):
    gen = torch.Generator().manual_seed(k)
    h, _ = _clusters(2.0 * torch.eye(k), [40] * k, 1e-5, gen)  # centres 2√2 apart, σ = 0.03; jitter costs < 2e-6
    out = kde_mi(h, None, noise_var=1e-3)
    for key in ("upper_xt", "lower_xt"):  # both bounds are exact here (overlap e^-125)
        assert out[key].item() == pytest.approx(math.log2(k), abs=1e-4)
    assert set(out) == {"upper_xt", "lower_xt"}


def test_clusters_aligned_with_labels_give_h_y():
    gen = torch.Generator().manual_seed(1)
    # four clusters, labels (0, 0, 1, 2) by cluster, sizes 30/30/30/30 → p(y) = (1/2, 1/4, 1/4), H(Y) = 1.5 bits
    h, cl = _clusters(torch.eye(4) * 3, [30, 30, 30, 30], 1e-4, gen)
    labels = torch.tensor([0, 0, 1, 2])[cl]
    out = kde_mi(h, labels, noise_var=1e-3)
    for key in ("upper_ty", "lower_ty"):
        assert out[key].item() == pytest.approx(1.5, abs=1e-4)
    # 3:1 sizes, two clusters = two labels → H(1/4) = 0.8113 bits for both I(X;T) and I(T;Y)
    h, cl = _clusters([[0.0, 0.0], [1.0, 1.0]], [90, 30], 1e-4, gen)
    out = kde_mi(h, cl, noise_var=1e-3)
    h14 = -(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75))
    for key in KEYS:
        assert out[key].item() == pytest.approx(h14, abs=1e-4)


def test_lower_below_upper_and_ceiling():
    gen = torch.Generator().manual_seed(2)
    n = 200
    h = torch.tanh(torch.randn(5, n, 4, generator=gen))
    labels = torch.randint(0, 3, (n,), generator=gen)
    for var in (1e-3, 1e-2, 1e-1, 1.0):
        out = kde_mi(h, labels, noise_var=var)
        assert torch.all(out["lower_xt"] <= out["upper_xt"] + 1e-6)
        assert torch.all(out["upper_xt"] <= math.log2(n) + 1e-5)
        assert torch.all(out["lower_xt"] >= -1e-6)


def test_chunked_equals_unchunked():
    gen = torch.Generator().manual_seed(3)
    h = torch.tanh(torch.randn(3, 300, 6, generator=gen))
    labels = torch.randint(0, 2, (300,), generator=gen)
    full = kde_mi(h, labels, noise_var=1e-2, chunk_size=300)
    for cs in (1, 7, 64):
        part = kde_mi(h, labels, noise_var=1e-2, chunk_size=cs)
        for k in KEYS:
            torch.testing.assert_close(part[k], full[k], atol=1e-5, rtol=0)


@pytest.mark.parametrize("var", [1e-3, 0.1])
def test_matches_ibsgd_formulas_float64(var):
    gen = torch.Generator().manual_seed(4)
    s, n, d = 3, 60, 3
    h = torch.tanh(torch.randn(s, n, d, generator=gen, dtype=torch.float64))
    labels = torch.randint(0, 2, (n,), generator=gen)
    out64 = kde_mi(h, labels, noise_var=var)
    out32 = kde_mi(h.float(), labels, noise_var=var)
    for i in range(s):
        ref = _ibsgd_mi(h[i].numpy(), labels.numpy(), var)
        for k in KEYS:
            assert out64[k][i].item() == pytest.approx(ref[k], abs=1e-10)
            assert out32[k][i].item() == pytest.approx(ref[k], abs=1e-4)


def test_kernel_group_sums_far_group_is_exact():
    """A point whose own group lies e^-500 below its nearest centre: the masked fallback gives the exact log-sum."""
    from ibtui.measures.kde import gaussian_kernel_log_sums

    pts = torch.zeros(2, 3, 1)
    cen = torch.tensor([0.0, 1.0, 1.0]).view(1, 3, 1).expand(2, 3, 1).contiguous()
    total, own = gaussian_kernel_log_sums(
        pts, cen, [500.0], point_groups=torch.tensor([0, 1, 1]), centre_groups=torch.tensor([0, 1, 1]), n_groups=2
    )
    torch.testing.assert_close(total[0], torch.zeros(2, 3), atol=1e-6, rtol=0)  # log(1 + 2e^-500)
    expect = torch.tensor([0.0, -500 + math.log(2), -500 + math.log(2)]).expand(2, 3)
    torch.testing.assert_close(own[0], expect, atol=1e-4, rtol=0)


def test_matmul_distances_agree_with_exact_ones():
    import torch as _t

    from ibtui.measures.kde import kde_mi as _kde

    g = _t.Generator().manual_seed(3)
    h = _t.rand(2, 600, 5, generator=g) * 2 - 1
    y = _t.randint(0, 2, (600,), generator=g)
    exact = _kde(h, y, 1e-3)
    fast = _kde(h, y, 1e-3, exact_distances=False)
    for key in exact:
        assert _t.allclose(exact[key], fast[key], atol=1e-3), key


# --- the fused attention path (kde_mi_attention): all layers and seeds in few kernel calls ---
def test_attention_matches_ibsgd_formulas():
    from ibtui.measures.kde import kde_mi_attention

    gen = torch.Generator().manual_seed(5)
    n = 80
    labels = torch.randint(0, 3, (n,), generator=gen)
    layers = [torch.tanh(torch.randn(2, n, d, generator=gen)) for d in (7, 3, 1, 12)]
    for var in (1e-3, 0.1):
        outs = kde_mi_attention(layers, labels, noise_var=var)
        for h, out in zip(layers, outs):
            for i in range(2):
                ref = _ibsgd_mi(h[i].double().numpy(), labels.numpy(), var)
                for k in KEYS:
                    assert out[k][i].item() == pytest.approx(ref[k], abs=2e-4), (h.shape, var, k)


def test_attention_on_closed_form_cases():
    from ibtui.measures.kde import kde_mi_attention

    gen = torch.Generator().manual_seed(6)
    same = kde_mi_attention([torch.full((2, 64, 3), 0.3)], torch.arange(64) % 2, noise_var=1e-3)[0]
    for k in KEYS:  # 64 identical points: every kernel is 1, the sink's share is 1/65
        torch.testing.assert_close(same[k], torch.zeros(2), atol=1e-5, rtol=0)
    h, cl = _clusters(2.0 * torch.eye(4), [40] * 4, 1e-5, gen)
    out = kde_mi_attention([h], None, noise_var=1e-3)[0]
    assert set(out) == {"upper_xt", "lower_xt"}
    for key in out:
        assert out[key].item() == pytest.approx(2.0, abs=1e-4)
    h, cl = _clusters([[0.0, 0.0], [1.0, 1.0]], [90, 30], 1e-4, gen)
    out = kde_mi_attention([h], cl, noise_var=1e-3)[0]
    h14 = -(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75))
    for key in KEYS:
        assert out[key].item() == pytest.approx(h14, abs=1e-4)


def test_attention_equals_pairwise_sums_per_layer_chunked_or_not():
    from ibtui.measures.kde import kde_mi_attention

    gen = torch.Generator().manual_seed(7)
    n = 700
    labels = torch.randint(0, 2, (n,), generator=gen)
    layers = [torch.tanh(torch.randn(3, n, d, generator=gen) * 0.7) for d in (10, 7, 5, 4, 3, 2)]
    batched = kde_mi_attention(layers, labels, noise_var=1e-3)
    chunked = kde_mi_attention(layers, labels, noise_var=1e-3, chunk_size=97)
    for h, a, c in zip(layers, batched, chunked):
        exact = kde_mi(h, labels, noise_var=1e-3)
        for k in KEYS:
            torch.testing.assert_close(a[k], exact[k], atol=1e-4, rtol=0)
            torch.testing.assert_close(c[k], a[k], atol=1e-5, rtol=0)


def test_attention_passes_its_start_up_check_on_the_cpu():
    from ibtui.measures.kde import attention_agrees

    assert attention_agrees("cpu", 1e-3) and attention_agrees("cpu", 0.1)


@pytest.mark.gpu
def test_attention_on_a_gpu_matches_the_cpu():
    from ibtui.measures.kde import attention_agrees, kde_mi_attention

    assert attention_agrees("cuda", 1e-3)
    gen = torch.Generator().manual_seed(8)
    labels = torch.randint(0, 2, (4096,), generator=gen)
    layers = [torch.tanh(torch.randn(4, 4096, d, generator=gen) * 0.7) for d in (10, 7, 5, 4, 3, 2)]
    cpu = kde_mi_attention(layers, labels, 1e-3)
    gpu = kde_mi_attention([h.cuda() for h in layers], labels.cuda(), 1e-3)
    for a, b in zip(cpu, gpu):
        for k in KEYS:
            torch.testing.assert_close(b[k].cpu(), a[k], atol=1e-3, rtol=0)


def test_underflowed_group_sums_are_redone_exactly_across_chunks_and_scales():
    """Many points whose own group lies far beyond their nearest centre, spread over chunks, two scales and
    per-seed log weights: every own-group log-sum equals a float64 brute force."""
    from ibtui.measures.kde import gaussian_kernel_log_sums

    gen = torch.Generator().manual_seed(9)
    s, m, n = 2, 50, 40
    cen = torch.randn(s, n, 2, generator=gen)
    cg = torch.arange(n) % 2
    cen[:, cg == 1] += 30.0  # group 1 far from everything
    pts = cen[:, :m % n] if m <= n else torch.cat([cen, cen[:, :m - n]], dim=1)
    pts = pts + 0.01 * torch.randn(pts.shape, generator=gen)
    pg = torch.ones(m, dtype=torch.int64)  # every point claims the far group
    pg[::3] = 0
    lw = torch.log(torch.rand(s, n, generator=gen) + 0.5)
    scales = [2.0, 8.0]
    total, own = gaussian_kernel_log_sums(pts, cen, scales, log_weights=lw, point_groups=pg, centre_groups=cg,
                                          n_groups=2, chunk_size=7)
    sq = ((pts.double()[:, :, None] - cen.double()[:, None]) ** 2).sum(-1)  # [S, M, n]
    for k, sc in enumerate(scales):
        lg = -sc * sq + lw.double()[:, None, :]
        ref_total = torch.logsumexp(lg, -1)
        ref_own = torch.logsumexp(lg.masked_fill(cg[None, None, :] != pg[None, :, None], float("-inf")), -1)
        torch.testing.assert_close(total[k].double(), ref_total, atol=1e-3, rtol=1e-5)
        torch.testing.assert_close(own[k].double(), ref_own, atol=1e-3, rtol=1e-5)


def test_attention_centres_offsets_and_hands_large_logits_to_exact_sums():
    """Features far from the origin are centred (same distances); features whose centred logits are too large
    for float32 dot products (wide ReLU features, σ² = 1e-3: an earlier version returned inf) use exact sums."""
    from ibtui.measures.kde import ATTENTION_MAX_LOGIT, kde_mi_attention

    gen = torch.Generator().manual_seed(10)
    labels = torch.randint(0, 2, (500,), generator=gen)
    near = torch.tanh(torch.randn(2, 500, 6, generator=gen))
    big = torch.relu(torch.randn(2, 500, 64, generator=gen)) * 100.0
    assert float((big - big.mean(1, keepdim=True)).square().sum(-1).max()) / 2e-3 > ATTENTION_MAX_LOGIT
    outs = kde_mi_attention([near + 300.0, big], labels, noise_var=1e-3)
    for h, out in zip([near, big], outs):
        exact = kde_mi(h.double(), labels, noise_var=1e-3)
        for k in KEYS:
            assert torch.isfinite(out[k]).all()
            torch.testing.assert_close(out[k].double(), exact[k], atol=2e-4, rtol=0)


@pytest.mark.slow  # over 2 s: keeps the README's fast set under 3 minutes on 2 cores
def test_saturated_layers_float32_within_1e3_bits_and_float64_exact():
    """Saturated tanh layers (points piled up in the hypercube's corners, many near-duplicates) are where the
    float32 attention path's logit rounding shows: within 1e-3 bits of float64 pairwise sums (the measured
    worst case is stated in kde.ATTENTION_MAX_LOGIT's comment); float64 inputs give the exact sums."""
    from ibtui.measures.kde import kde_mi_attention

    gen = torch.Generator().manual_seed(11)
    labels = torch.randint(0, 2, (2048,), generator=gen)
    layers = [torch.tanh(20.0 * torch.randn(3, 2048, d, generator=gen)) for d in (10, 5, 2)]
    f32 = kde_mi_attention(layers, labels, noise_var=1e-3)
    f64 = kde_mi_attention([h.double() for h in layers], labels, noise_var=1e-3)
    worst = 0.0
    for h, a, b in zip(layers, f32, f64):
        exact = kde_mi(h.double(), labels, noise_var=1e-3)
        for k in KEYS:
            worst = max(worst, float((a[k].double() - exact[k]).abs().max()))
            torch.testing.assert_close(b[k], exact[k], atol=1e-9, rtol=0)
    assert 1e-5 < worst < 1e-3  # float32 is off by a measurable but small amount here


def test_kde_precision_setting_reaches_the_probe():
    from ibtui.engine.trainer import Engine
    from ibtui.scenario import load_scenario, with_changes

    sc = with_changes(load_scenario("szt_tanh"), {"run.seeds": 2, "run.epochs": 1, "measure.snapshots": 2,
                                                  "measure.kde.points": 128, "measure.kde.precision": "float64"})
    engine = Engine(sc)
    values = engine.measure()
    kde = [v for (layer, q, est), v in values.items() if est == "kde_upper"]
    assert kde and all(v.dtype == torch.float64 for v in kde)
    assert "float64 sums" in engine.info.estimator_settings["kde_upper"]
