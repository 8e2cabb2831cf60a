"""Gradient moments / SNR, weight norms and the drift→diffusion detector against direct and closed-form values."""
import math

import numpy as np
import pytest
import torch

from ibtui.measures.gradients import (SNR_DEFINITION, GradientMoments, TransitionDetector, detect_transition,
                                      weight_norms)


def _stream(gen, n, shapes, s=3, dtype=torch.float32):
    """n mini-batches of per-layer gradients [S, *shape] with a per-seed, per-layer mean."""
    means = [torch.randn(s, *sh, generator=gen, dtype=torch.float64) for sh in shapes]
    return [[(m + 0.7 * torch.randn(m.shape, generator=gen, dtype=torch.float64)).to(dtype) for m in means]
            for _ in range(n)]


def _direct(stream, layer):
    """numpy float64 over the stored stream: ‖mean‖, √(tr Cov) with n−1, per seed."""
    g = np.stack([b[layer].double().numpy() for b in stream])  # [n, S, ...]
    g = g.reshape(g.shape[0], g.shape[1], -1)
    mean = g.mean(0)
    tr_cov = ((g - mean) ** 2).sum(axis=(0, 2)) / (g.shape[0] - 1)
    return np.linalg.norm(mean, axis=1), np.sqrt(tr_cov)


def _feed(stream, n_layers, s=3, **kw):
    gm = GradientMoments(s, n_layers, "cpu", **kw)
    for batch in stream:
        gm.update(batch)
    return gm.summary()


def test_moments_equal_direct_numpy_computation():
    gen = torch.Generator().manual_seed(1)
    shapes = [(4, 3), (3, 2), (2, 2, 3)]  # any trailing shape (a conv kernel too)
    stream = _stream(gen, 25, shapes)
    out = _feed(stream, 3)
    for key in ("grad_mean", "grad_std", "snr"):
        assert out[key].shape == (3, 3) and out[key].dtype == torch.float32
    for layer in range(3):
        mean, std = _direct(stream, layer)
        np.testing.assert_allclose(out["grad_mean"][:, layer].numpy(), mean, rtol=1e-6)
        np.testing.assert_allclose(out["grad_std"][:, layer].numpy(), std, rtol=1e-6)
        np.testing.assert_allclose(out["snr"][:, layer].numpy(), mean / std, rtol=1e-6)


def test_moments_converge_to_known_mean_and_covariance():
    """g_b = μ + A ε_b: ‖ḡ‖ → ‖μ‖ and tr Cov → tr AAᵀ, within 5 standard errors for n batches."""
    gen = torch.Generator().manual_seed(2)
    s, d, n = 4, 40, 3000
    mu = torch.randn(s, d, generator=gen, dtype=torch.float64) * torch.tensor([0.05, 0.3, 1.0, 3.0])[:, None]
    a = torch.randn(s, d, d, generator=gen, dtype=torch.float64) / math.sqrt(d)
    gm = GradientMoments(s, 1, "cpu")
    for _ in range(n):
        eps = torch.randn(s, d, 1, generator=gen, dtype=torch.float64)
        gm.update([(mu + (a @ eps)[..., 0]).float()])
    out = gm.summary()
    c = a @ a.transpose(1, 2)
    tr_c = c.diagonal(dim1=1, dim2=2).sum(1)
    mu_norm = mu.norm(dim=1)
    # ‖ḡ‖ ≈ ‖μ‖ + μ̂ᵀAε̄ + (tr C − μ̂ᵀCμ̂)/(2n‖μ‖): sd of the linear term is √(μ̂ᵀCμ̂/n)
    u = mu / mu_norm[:, None]
    quad = (u[:, None, :] @ c @ u[:, :, None]).flatten()
    bias = (tr_c - quad) / (2 * n * mu_norm)
    sd_mean = (quad / n).sqrt()
    assert ((out["grad_mean"][:, 0].double() - mu_norm - bias).abs() <= 5 * sd_mean).all()
    # unbiased sample tr Cov of Gaussian vectors has variance 2 tr(C²)/(n−1)
    sd_tr = (2 * (c @ c).diagonal(dim1=1, dim2=2).sum(1) / (n - 1)).sqrt()
    assert ((out["grad_std"][:, 0].double() ** 2 - tr_c).abs() <= 5 * sd_tr).all()
    np.testing.assert_allclose(out["snr"][:, 0].numpy(), (mu_norm / tr_c.sqrt()).numpy(), rtol=0.1)


@pytest.mark.parametrize("acc", [torch.float64, torch.float32])
def test_moments_stable_for_large_means_in_float32(acc):
    """‖μ‖² / tr Cov ≈ 1e12: the naive float32 Σ|g|² − n|ḡ|² loses everything; the shifted sums do not."""
    gen = torch.Generator().manual_seed(3)
    n, d = 200, 64
    mu = 1e4 * torch.ones(2, d, dtype=torch.float64)
    stream = [[(mu + 0.1 * torch.randn(2, d, generator=gen, dtype=torch.float64)).float()] for _ in range(n)]
    mean, std = _direct(stream, 0)
    out = _feed(stream, 1, s=2, dtype=acc)
    np.testing.assert_allclose(out["grad_std"][:, 0].numpy(), std, rtol=1e-4)
    np.testing.assert_allclose(out["grad_mean"][:, 0].numpy(), mean, rtol=1e-6)
    g = torch.stack([b[0] for b in stream])  # the naive float32 formula, to show the case is hard
    naive = ((g.square().sum((0, 2)) - g.sum(0).square().sum(1) / n) / (n - 1)).clamp_min(0).sqrt()
    assert ((naive - torch.from_numpy(std).float()).abs() / torch.from_numpy(std).float() > 0.5).all()


def test_layers_and_seeds_do_not_mix():
    gen = torch.Generator().manual_seed(4)
    const = torch.randn(3, 5, 4, generator=gen)
    stream_a = _stream(gen, 10, [(3, 2)])
    stream_b = _stream(gen, 10, [(3, 2)])
    out_a = _feed([[const, b[0]] for b in stream_a], 2)
    out_b = _feed([[const, b[0]] for b in stream_b], 2)
    # layer 0 is the same constant gradient in both runs: its numbers do not depend on layer 1
    assert torch.equal(out_a["grad_mean"][:, 0], out_b["grad_mean"][:, 0])
    np.testing.assert_allclose(out_a["grad_mean"][:, 0].numpy(), const.flatten(1).norm(dim=1).numpy(), rtol=1e-6)
    assert (out_a["grad_std"][:, 0] == 0).all() and torch.isinf(out_a["snr"][:, 0]).all()
    assert not torch.equal(out_a["grad_std"][:, 1], out_b["grad_std"][:, 1])
    # a seed gone NaN (diverged) leaves the others untouched
    poisoned = [[b[0].clone()] for b in stream_a]
    poisoned[3][0][0] = math.nan
    out_p = _feed(poisoned, 1)
    assert torch.isnan(out_p["snr"][0, 0])
    assert torch.equal(out_p["snr"][1:, 0], out_a["snr"][1:, 1])


def test_window_reset_and_too_few_batches():
    gen = torch.Generator().manual_seed(5)
    stream = _stream(gen, 6, [(2, 2)])
    gm = GradientMoments(3, 1, "cpu")
    gm.update(stream[0])
    one = gm.summary()
    assert torch.isnan(one["grad_std"]).all() and torch.isnan(one["snr"]).all()
    np.testing.assert_allclose(one["grad_mean"][:, 0].numpy(), stream[0][0].flatten(1).norm(dim=1).numpy(), rtol=1e-6)
    for b in stream[1:3]:
        gm.update(b)
    gm.reset()
    for b in stream[3:]:
        gm.update(b)
    fresh = _feed(stream[3:], 1)
    for key in fresh:
        assert torch.equal(gm.summary()[key], fresh[key])
    assert gm.count == 3


def test_weight_norms_against_numpy():
    gen = torch.Generator().manual_seed(6)
    w0 = [torch.randn(4, 6, 5, generator=gen), torch.randn(4, 5, 2, generator=gen)]
    w = [x + 0.1 * torch.randn(x.shape, generator=gen) for x in w0]
    out = weight_norms(w, w0)
    for layer in range(2):
        a, b = w[layer].numpy(), w0[layer].numpy()
        np.testing.assert_allclose(out["weight_norm"][:, layer].numpy(),
                                   [np.linalg.norm(a[s], "fro") for s in range(4)], rtol=1e-6)
        np.testing.assert_allclose(out["weight_change"][:, layer].numpy(),
                                   [np.linalg.norm(a[s] - b[s], "fro") for s in range(4)], rtol=1e-5)
    assert (weight_norms(w0, w0)["weight_change"] == 0).all()


def test_snr_definition_is_one_line_and_per_layer():
    assert "\n" not in SNR_DEFINITION
    assert "per layer" in SNR_DEFINITION and "not cumulative" in SNR_DEFINITION and "n-1" in SNR_DEFINITION


# ---------------------------------------------------------------- drift → diffusion transition

EPOCHS = np.unique(np.round(np.logspace(0, 4, 400))).astype(float)  # log-spaced snapshots, as a run's schedule
X = np.log10(EPOCHS)


def _curves(kind, s, noise, seed, kink=400.0, slope=-1.5):
    rng = np.random.default_rng(seed)
    xk = math.log10(kink)
    if kind == "kink":  # flat, then a power-law fall from `kink`
        y = np.where(X < xk, 0.0, slope * (X - xk))
    elif kind == "sigmoid":  # a fall of 1.5 decades whose steepest point is at `kink`
        y = -0.75 * (1 + np.tanh((X - xk) / 0.15))
    elif kind == "flat":
        y = np.zeros_like(X)
    else:  # a slow drift-phase decline, 0.2 decade per decade
        y = -0.2 * X
    return torch.from_numpy(10 ** (y + noise * rng.standard_normal((s, len(X)))))


def test_detects_kink_within_stated_tolerance_and_only_once_confirmed():
    """Kink at 400, slope −1.5, noise 0.05 decade.  On a kink the steepest point is not unique; stated
    tolerance: no earlier than kink − window (0.1 decade), no later than the declaration − hold, the
    median within 0.3 decade of the kink, and declared only after the noiseless curve has fallen by the
    margin (epoch ≥ 400·10^(0.3/1.5)) and within 0.8 decade of the kink."""
    s = 40
    snr = _curves("kink", s, 0.05, seed=7)
    det = TransitionDetector(s, 1)
    declared_at = torch.full((s,), math.nan, dtype=torch.float64)
    for t, e in enumerate(EPOCHS):
        before = det.epoch.clone()
        new = det.update(e, snr[:, t:t + 1])[:, 0]
        assert torch.equal(det.detected[:, 0], ~torch.isnan(before[:, 0]) | new)
        declared_at[new] = e
        assert torch.isnan(det.epoch[~det.detected]).all()
    found = det.epoch[:, 0]
    assert det.detected.all()
    d = torch.log10(found / 400.0)
    assert (d >= -0.1).all() and d.median() <= 0.3, d
    assert (found <= declared_at / 10 ** det.hold * (1 + 1e-9)).all()
    assert (declared_at >= 400 * 10 ** (0.3 / 1.5)).all() and (declared_at <= 400 * 10 ** 0.8).all()
    assert torch.equal(detect_transition(torch.from_numpy(EPOCHS), snr), found)  # offline = online


def test_sigmoid_fall_found_at_its_steepest_point():
    snr = _curves("sigmoid", 30, 0.05, seed=8)
    found = detect_transition(torch.from_numpy(EPOCHS), snr)
    assert (torch.log10(found / 400.0).abs() <= 0.1).all(), found


@pytest.mark.parametrize("kind,noise", [("flat", 0.1), ("flat", 0.2), ("slow", 0.05)])
def test_no_transition_on_flat_or_slowly_declining_curves(kind, noise):
    found = detect_transition(torch.from_numpy(EPOCHS), _curves(kind, 100, noise, seed=9))
    assert torch.isnan(found).all(), found[~torch.isnan(found)]


def test_vectorised_over_seeds_and_layers_and_phase():
    s, kinks = 6, (100.0, 400.0, 1500.0)
    curves = torch.stack([_curves("sigmoid", s, 0.03, seed=10 + i, kink=k) for i, k in enumerate(kinks)], dim=1)
    curves[2, 1] = _curves("flat", 1, 0.03, seed=20)[0]  # one seed's layer 1 never falls
    det = TransitionDetector(s, 3)
    for t, e in enumerate(EPOCHS):
        det.update(e, curves[:, :, t])
    for layer, k in enumerate(kinks):
        got = det.epoch[:, layer]
        ok = ~torch.isnan(got)
        expected = torch.ones(s, dtype=torch.bool)
        if layer == 1:
            expected[2] = False
        assert torch.equal(ok, expected)
        assert (torch.log10(got[ok] / k).abs() <= 0.1).all()
    phase = det.phase(800.0)
    assert phase[0] == ["diffusion", "diffusion", "drift"] and phase[2][1] == "drift"
    assert torch.equal(det.in_diffusion(1e9), det.detected)
    # the same series alone give the same answers (no mixing across seeds and layers)
    alone = detect_transition(torch.from_numpy(EPOCHS), curves[:, 2])
    assert torch.equal(alone, det.epoch[:, 2])


def test_detector_ignores_epoch_zero_and_bad_values_and_rejects_unordered_epochs():
    det = TransitionDetector(1, 1)
    assert not det.update(0, torch.ones(1, 1)).any()
    det.update(1, torch.zeros(1, 1))  # SNR 0 / NaN are ignored, not logged as −inf
    det.update(2, torch.full((1, 1), math.nan))
    assert torch.isnan(det._y[0, :2]).all()
    with pytest.raises(ValueError):
        det.update(2, torch.ones(1, 1))
    assert det.earliest_pending_epoch == pytest.approx(0.1)  # point 1 is complete: 10^(0 - lookback)
