"""The eq. 9 Gaussian bound against linear-Gaussian channels with closed-form MI, and Theorem 1's bound by hand."""
import math

import numpy as np
import pytest
import torch

from ibtui.measures.gaussian_bound import (BOUND_DEFINITION, BoundWindow, gaussian_bound, input_compression_bound,
                                           input_variance)
from oracles import exact_linear_gaussian_mi

F64 = torch.float64


def _np_bound(ws, w, st2, sz2):
    """Eq. 9 restated in numpy for one seed: W [d_in, d_out], y = Wᵀx."""
    dw = w - ws
    lam, q = np.linalg.eigh(dw.T @ dw)
    a = q.T @ ws.T @ ws @ q
    return 0.5 * np.sum(np.log2(1 + np.diag(a) / (np.maximum(lam, 0) + sz2 / st2)))


def _orthonormal(gen, s, d, k):
    """[s, d, k] with orthonormal columns."""
    q, _ = torch.linalg.qr(torch.randn(s, d, d, generator=gen, dtype=F64))
    return q[..., :k]


def test_bound_matches_numpy_restatement_and_orientation():
    gen = torch.Generator().manual_seed(1)
    s, d_in, d_out = 4, 7, 5
    ws = torch.randn(s, d_in, d_out, generator=gen, dtype=F64)
    w = ws + 0.3 * torch.randn(s, d_in, d_out, generator=gen, dtype=F64)
    st2 = torch.tensor([0.5, 1.0, 2.0, 0.1], dtype=F64)
    got = gaussian_bound(ws, w, st2, sigma_z2=0.01)
    assert got.shape == (s,) and got.dtype == F64
    want = [_np_bound(ws[i].numpy(), w[i].numpy(), float(st2[i]), 0.01) for i in range(s)]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-9)
    # float32 weights in, float32 out, same numbers to float32 precision
    np.testing.assert_allclose(gaussian_bound(ws.float(), w.float(), st2.float(), 0.01).numpy(), want, rtol=1e-4)


def test_bound_dominates_eq7_quantity_hadamard():
    """On 400 random channels (δW Gaussian at several scales, random σ's) bound ≥ eq. 7 MI, mostly strictly."""
    gen = torch.Generator().manual_seed(2)
    s, d_in, d_out = 400, 9, 4
    ws = torch.randn(s, d_in, d_out, generator=gen, dtype=F64)
    scale = 10 ** torch.empty(s, 1, 1, dtype=F64).uniform_(-1.5, 1.0, generator=gen)
    dw = scale * torch.randn(s, d_in, d_out, generator=gen, dtype=F64)
    st2 = 10 ** torch.empty(s, dtype=F64).uniform_(-1, 1, generator=gen)
    for sz2 in (0.0, 0.05, 1.0):
        bound = gaussian_bound(ws, ws + dw, st2, sz2, eps=0.0)
        exact = exact_linear_gaussian_mi(ws, dw, st2, sz2)
        assert (bound >= exact - 1e-9).all()
        assert ((bound - exact) > 1e-6).float().mean() > 0.9


def test_eq7_quantity_is_the_gaussian_mi_when_signal_and_noise_are_orthogonal():
    """W*ᵀδW = 0 makes δWᵀT + Z independent of W*ᵀT: eq. 7 is then I(Y; W*ᵀT) of the joint Gaussian."""
    gen = torch.Generator().manual_seed(3)
    s, d_in, d_out, st2, sz2 = 5, 10, 3, 0.7, 0.2
    u = _orthonormal(gen, s, d_in, 2 * d_out)  # two orthogonal column spaces
    ws = u[..., :d_out] @ torch.randn(s, d_out, d_out, generator=gen, dtype=F64)
    dw = u[..., d_out:] @ torch.randn(s, d_out, d_out, generator=gen, dtype=F64) * 0.5
    assert (ws.transpose(1, 2) @ dw).abs().max() < 1e-12
    got = exact_linear_gaussian_mi(ws, dw, st2, sz2)
    for i in range(s):
        a, b = ws[i].numpy(), (ws[i] + dw[i]).numpy()
        cov_u = st2 * a.T @ a  # U = W*ᵀT
        cov_y = st2 * b.T @ b + sz2 * np.eye(d_out)  # Y = (W* + δW)ᵀT + Z
        cov_yu = st2 * b.T @ a
        joint = np.block([[cov_y, cov_yu], [cov_yu.T, cov_u]])
        mi = 0.5 * (np.linalg.slogdet(cov_y)[1] + np.linalg.slogdet(cov_u)[1] - np.linalg.slogdet(joint)[1]) / math.log(2)
        assert got[i].item() == pytest.approx(mi, rel=1e-9)


def test_bound_is_tight_when_a_is_diagonal():
    """W*ᵀW* and δWᵀδW share eigenvectors (A = QᵀW*ᵀW*Q diagonal): Hadamard is an equality."""
    gen = torch.Generator().manual_seed(4)
    s, d_in, d_out, st2, sz2 = 6, 12, 4, 1.3, 0.1
    u = _orthonormal(gen, s, d_in, 2 * d_out)
    v = _orthonormal(gen, s, d_out, d_out)
    a = torch.rand(s, d_out, generator=gen, dtype=F64) * 3 + 0.1
    b = torch.rand(s, d_out, generator=gen, dtype=F64) * 2 + 0.1
    ws = u[..., :d_out] @ torch.diag_embed(a) @ v.transpose(1, 2)
    dw = u[..., d_out:] @ torch.diag_embed(b) @ v.transpose(1, 2)
    bound = gaussian_bound(ws, ws + dw, st2, sz2, eps=0.0)
    closed = 0.5 * torch.log2(1 + a ** 2 / (b ** 2 + sz2 / st2)).sum(1)
    torch.testing.assert_close(bound, closed, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(exact_linear_gaussian_mi(ws, dw, st2, sz2), closed, rtol=1e-10, atol=1e-10)


def test_scalar_output_is_tight_and_closed_form():
    """d_{k+1} = 1 (the paper's case): bound = eq. 7 = ½ log2(1 + ‖w*‖² / (‖δw‖² + σ_z²/σ_T²))."""
    gen = torch.Generator().manual_seed(5)
    ws = torch.randn(8, 20, 1, generator=gen, dtype=F64)
    dw = 0.4 * torch.randn(8, 20, 1, generator=gen, dtype=F64)
    closed = 0.5 * torch.log2(1 + ws.square().sum((1, 2)) / (dw.square().sum((1, 2)) + 0.3 / 2.0))
    torch.testing.assert_close(gaussian_bound(ws, ws + dw, 2.0, 0.3, eps=0.0), closed, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(exact_linear_gaussian_mi(ws, dw, 2.0, 0.3), closed, rtol=1e-12, atol=1e-12)


def test_sigma_z_to_zero_limit_and_monotone_in_noise():
    gen = torch.Generator().manual_seed(6)
    ws = torch.randn(3, 8, 4, generator=gen, dtype=F64)
    w = ws + 0.2 * torch.randn(3, 8, 4, generator=gen, dtype=F64)
    limit = torch.tensor([_np_bound(ws[i].numpy(), w[i].numpy(), 1.0, 0.0) for i in range(3)], dtype=F64)
    torch.testing.assert_close(gaussian_bound(ws, w, 1.0, 0.0, eps=0.0), limit, rtol=1e-10, atol=0)
    torch.testing.assert_close(gaussian_bound(ws, w, 1.0, 1e-12), limit, rtol=1e-8, atol=0)
    values = torch.stack([gaussian_bound(ws, w, 1.0, z) for z in (0.0, 1e-3, 1e-1, 10.0)])
    assert (values[1:] < values[:-1]).all()  # more measurement noise, less information
    # and the bound falls as the diffusion part grows (δW scaled up along a fixed direction)
    grow = torch.stack([gaussian_bound(ws, ws + c * (w - ws), 1.0) for c in (0.5, 1.0, 2.0, 4.0)])
    assert (grow[1:] < grow[:-1]).all()


def test_degenerate_delta_w_is_finite_but_large():
    """δW = 0: λ = 0 and only eps keeps ½ Σ log2(1 + A_ii/eps) finite."""
    ws = torch.eye(3, dtype=F64)[None]
    got = gaussian_bound(ws, ws.clone(), 1.0, 0.0, eps=1e-12)
    assert got.item() == pytest.approx(1.5 * math.log2(1 + 1e12), rel=1e-9)


def test_input_variance_against_numpy():
    gen = torch.Generator().manual_seed(7)
    acts = torch.randn(3, 50, 6, generator=gen) * torch.tensor([0.5, 1.0, 2.0])[:, None, None] + 3.0
    np.testing.assert_allclose(input_variance(acts).numpy(), acts.numpy().var(axis=1).mean(axis=1), rtol=1e-5)


def test_input_compression_bound_by_hand():
    # I = 10 bits, m = 10000, δ = 0.05: √((2^10 + ln 40) / 20000) = √(1027.6888794541139 / 20000)
    assert input_compression_bound(10.0, 10000, 0.05).item() == pytest.approx(0.2266813710314672, rel=1e-12)
    # the consistent union-bound form: √((10 ln 2 + ln 40) / 20000)
    assert input_compression_bound(10.0, 10000, 0.05, form="union").item() == pytest.approx(
        math.sqrt((6.931471805599453 + 3.6888794541139363) / 20000), rel=1e-12)
    batch = input_compression_bound(torch.tensor([0.0, 1.0, 12.0]), 3277, delta=0.1)
    expected = [math.sqrt((2 ** i + math.log(20)) / 6554) for i in (0, 1, 12)]
    np.testing.assert_allclose(batch.numpy(), expected, rtol=1e-12)
    with pytest.raises(ValueError):
        input_compression_bound(1.0, 10, form="nope")


# ---------------------------------------------------------------- freezing W* and σ_T²

def _trajectory(gen, s=3, epochs=(1, 2, 4, 8, 16, 32, 64)):
    """Weights of 2 layers at snapshot epochs: W(e) = W0 + e·D, and σ_T²(e) per layer."""
    w0 = [torch.randn(s, 5, 4, generator=gen, dtype=F64), torch.randn(s, 4, 2, generator=gen, dtype=F64)]
    d = [0.01 * torch.randn(x.shape, generator=gen, dtype=F64) for x in w0]
    return {e: ([a + e * b for a, b in zip(w0, d)], torch.full((s, 2), 1.0 + e / 100, dtype=F64)) for e in epochs}


def test_bound_window_freezes_at_the_transition_snapshot():
    gen = torch.Generator().manual_seed(8)
    traj = _trajectory(gen)
    nan = math.nan
    # seed 0 layer 0: transition at 4, declared at 16; seed 1 layer 1: transition at 8, declared at 32
    declared = {16: torch.tensor([[4.0, nan], [nan, nan], [nan, nan]]),
                32: torch.tensor([[4.0, nan], [nan, 8.0], [nan, nan]])}
    bw = BoundWindow(3, 2)
    last = torch.full((3, 2), nan)
    for e, (ws, s2) in traj.items():
        if e in declared:
            last = declared[e]
        out = bw.update(e, ws, s2, last, keep_from=e / 10)
        if e < 16:
            assert torch.isnan(out).all()
        if e >= 16:
            w_star, s2_star = traj[4][0][0], traj[4][1][:, 0]
            want = gaussian_bound(w_star, ws[0], s2_star)
            assert out[0, 0].item() == pytest.approx(want[0].item(), rel=1e-12)
        if e >= 32:
            want = gaussian_bound(traj[8][0][1], ws[1], traj[8][1][:, 1])
            assert out[1, 1].item() == pytest.approx(want[1].item(), rel=1e-12)
            assert torch.isnan(out[2]).all() and torch.isnan(out[0, 1]) and torch.isnan(out[1, 0])
    assert torch.equal(bw.frozen_epoch.isnan(), torch.tensor([[False, True], [True, False], [True, True]]))
    assert bw.frozen_epoch[0, 0] == 4 and bw.frozen_epoch[1, 1] == 8
    assert [e for e, _, _ in bw._buffer] == [8, 16, 32, 64]  # older than keep_from dropped


def test_bound_window_epoch_and_confirmed_modes():
    gen = torch.Generator().manual_seed(9)
    traj = _trajectory(gen)
    fixed = BoundWindow(3, 2, mode="epoch", freeze_epoch=5, sigma_z2=0.01)
    confirmed = BoundWindow(3, 2, mode="confirmed")
    trans = torch.tensor([[2.0, 2.0], [math.nan, 2.0], [math.nan, math.nan]])
    for e, (ws, s2) in traj.items():
        out = fixed.update(e, ws, s2)
        out_c = confirmed.update(e, ws, s2, trans if e >= 16 else None)
        if e <= 8:
            assert torch.isnan(out).all()  # not frozen yet, then δW = 0 at the frozen snapshot (8)
        else:
            for layer in range(2):
                want = gaussian_bound(traj[8][0][layer], ws[layer], traj[8][1][:, layer], 0.01)
                torch.testing.assert_close(out[:, layer], want, rtol=1e-12, atol=0)
        if e == 64:
            want = gaussian_bound(traj[16][0][1], ws[1], traj[16][1][:, 1])
            torch.testing.assert_close(out_c[:2, 1], want[:2], rtol=1e-12, atol=0)
            assert torch.isnan(out_c[1:, 0]).all() and torch.isnan(out_c[2]).all()
    with pytest.raises(ValueError):
        BoundWindow(1, 1, mode="epoch")


def test_bound_definition_is_one_line():
    assert "\n" not in BOUND_DEFINITION and "log2" in BOUND_DEFINITION
