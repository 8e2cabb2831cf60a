"""Tests for ibtui.measures.clustering on synthetic activations with known structure."""

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist

from ibtui.measures import clustering as cl


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _tight_clusters(S: int, k: int, per: int, d: int, bin_size: float, spread: float, seed: int = 0):
    """k clusters of `per` points, centred in distinct grid cells, jitter << bin_size/2."""
    g = _gen(seed)
    centres = (torch.randint(-20, 20, (S, k, d), generator=g).double())
    # make the k centres distinct per seed: shift cluster c by 100*c on dim 0
    centres[:, :, 0] += 100 * torch.arange(k, dtype=torch.float64)
    centres = (centres + 0.5) * bin_size
    labels = torch.arange(k).repeat_interleave(per)
    h = centres[:, labels] + spread * bin_size * (2 * torch.rand(S, k * per, d, generator=g, dtype=torch.float64) - 1)
    return h.float(), labels


# ---------------------------------------------------------------------------------------- cells


@pytest.mark.parametrize("k", [1, 3, 7])
def test_tight_clusters_exact_cells_entropy_spread(k):
    h, labels = _tight_clusters(S=4, k=k, per=50, d=5, bin_size=0.1, spread=0.1)
    assert cl.occupied_cells(h, 0.1).tolist() == [k] * 4
    torch.testing.assert_close(cl.binned_entropy(h, 0.1), torch.full((4,), math.log2(k)), atol=1e-6, rtol=0)
    if k > 1:
        # W <= d*(0.01)^2/3 per point vs B >= O(100): ratio far below 1e-5
        assert (cl.spread_ratio(h, labels) < 1e-5).all()
        assert cl.partition_homogeneity(h, labels, 0.1).tolist() == [1.0] * 4
        assert cl.partition_purity(h, labels, 0.1).tolist() == [1.0] * 4


def test_unequal_clusters_entropy_exact():
    sizes = [10, 30, 60]
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(sizes)])
    h = (labels.float()[None, :, None] * 1.0 + 0.05).expand(2, -1, 3).contiguous()
    exact = -sum(n / 100 * math.log2(n / 100) for n in sizes)
    torch.testing.assert_close(cl.binned_entropy(h, 0.1), torch.full((2,), exact), atol=1e-6, rtol=0)


def test_uniform_noise_no_clustering():
    # d = 10, bin 0.1 on [0,1)^10: 1e10 cells, E[collisions] ~ N^2/(2*1e10) = 8e-4 per seed
    N = 4096
    h = torch.rand(3, N, 10, generator=_gen(1))
    assert cl.occupied_cells(h, 0.1).tolist() == [N] * 3
    torch.testing.assert_close(cl.binned_entropy(h, 0.1), torch.full((3,), math.log2(N)), atol=1e-6, rtol=0)


def test_uniform_noise_occupancy_matches_closed_form():
    # M = 100 cells (d = 2, bin 0.1 on [0,1)^2), N points: E[occupied] = M(1 - (1-1/M)^N),
    # Var = M(M-1)(1-2/M)^N + M(1-1/M)^N - M^2(1-1/M)^(2N).  Mean over S seeds within 4 sd.
    S, N, M = 64, 200, 100
    h = torch.rand(S, N, 2, generator=_gen(2), dtype=torch.float64)
    cells = cl.occupied_cells(h, 0.1)
    q1, q2 = (1 - 1 / M) ** N, (1 - 2 / M) ** N
    mean = M * (1 - q1)
    var = M * (M - 1) * q2 + M * q1 - M * M * q1 * q1
    assert abs(cells.mean().item() - mean) < 4 * math.sqrt(var / S)
    # every count is an integer between the obvious bounds
    assert ((cells >= 1) & (cells <= M)).all() and (cells == cells.round()).all()


def test_cells_match_numpy_unique_and_grid_origin():
    g = _gen(3)
    h = torch.rand(2, 500, 3, generator=g, dtype=torch.float64) * 0.6 - 0.3
    for lo in (None, 0.05, torch.tensor([0.01, -0.02, 0.03], dtype=torch.float64)):
        lo_np = 0.0 if lo is None else np.asarray(lo)
        want = [len(np.unique(np.floor((h[s].numpy() - lo_np) / 0.1), axis=0)) for s in range(2)]
        assert cl.occupied_cells(h, 0.1, lo).tolist() == want
    # origin shift: 0.02 and 0.08 share cell [0, 0.1) but straddle the edge 0.05 of lo = 0.05
    two = torch.tensor([[[0.02], [0.08]]], dtype=torch.float64)
    assert cl.occupied_cells(two, 0.1).tolist() == [1]
    assert cl.occupied_cells(two, 0.1, lo=0.05).tolist() == [2]


def test_hash_equals_pack_and_numpy():
    # clusters with exact duplicates plus singletons, in a grid small enough to pack
    g = _gen(4)
    base = torch.rand(3, 40, 6, generator=g, dtype=torch.float64)
    h = torch.cat([base[:, torch.randint(0, 40, (300,), generator=g)],
                   torch.rand(3, 100, 6, generator=g, dtype=torch.float64)], dim=1)
    labels = torch.randint(0, 3, (400,), generator=g)
    assert torch.equal(cl.occupied_cells(h, 0.05, method="pack"), cl.occupied_cells(h, 0.05, method="hash"))
    # entropies agree to rounding (the counts are summed in another order)
    torch.testing.assert_close(cl.binned_entropy(h, 0.05, method="pack"),
                               cl.binned_entropy(h, 0.05, method="hash"), atol=1e-12, rtol=0)
    torch.testing.assert_close(cl.partition_homogeneity(h, labels, 0.05, method="pack"),
                               cl.partition_homogeneity(h, labels, 0.05, method="hash"), atol=1e-12, rtol=0)
    want = [len(np.unique(np.floor(h[s].numpy() / 0.05), axis=0)) for s in range(3)]
    assert cl.occupied_cells(h, 0.05, method="hash").tolist() == want


def test_hash_path_on_grid_too_large_to_pack():
    # d = 16, bin 1e-6 on [0,1): ~1e96 cells, packing impossible; 'auto' must hash.
    k, per = 9, 30
    g = _gen(5)
    centres = torch.rand(2, k, 16, generator=g, dtype=torch.float64)
    h = centres.repeat_interleave(per, dim=1)  # exact duplicates within a cluster
    with pytest.raises(ValueError):
        cl.occupied_cells(h, 1e-6, method="pack")
    assert cl.occupied_cells(h, 1e-6).tolist() == [k, k]
    torch.testing.assert_close(cl.binned_entropy(h, 1e-6), torch.full((2,), math.log2(k), dtype=torch.float64))


def test_hash_limbs_separate_cells_p_apart():
    # cells 0 and p = 2^31-1 along dim 0 would collide under a plain mod-p hash; limbs keep them apart
    p = 2**31 - 1
    h = torch.tensor([[[0.5, 0.5], [p + 0.5, 0.5], [0.5, 0.5]]], dtype=torch.float64)
    assert cl.occupied_cells(h, 1.0, method="hash").tolist() == [2]
    assert cl.occupied_cells(h, 1.0, method="pack").tolist() == [2]
    # a range needing 3 limbs (> p^2 cells) also works
    h3 = torch.tensor([[[0.5], [p * p * 3 + 0.5], [0.5]]], dtype=torch.float64)
    assert cl.occupied_cells(h3, 1.0, method="hash").tolist() == [2]


def test_cells_chunked_equals_unchunked():
    h = torch.rand(3, 777, 4, generator=_gen(6))
    labels = torch.randint(0, 4, (777,), generator=_gen(7))
    for method in ("pack", "hash"):
        full = cl.binned_entropy(h, 0.3, method=method)
        torch.testing.assert_close(cl.binned_entropy(h, 0.3, method=method, chunk=5), full, atol=0, rtol=0)
        torch.testing.assert_close(cl.partition_homogeneity(h, labels, 0.3, method=method, chunk=13),
                                   cl.partition_homogeneity(h, labels, 0.3, method=method), atol=0, rtol=0)


# ---------------------------------------------------------------------------------------- spread


def _spread_brute(h: np.ndarray, y: np.ndarray) -> float:
    mu = h.mean(0)
    w = b = 0.0
    for c in np.unique(y):
        hc = h[y == c]
        mc = hc.mean(0)
        w += ((hc - mc) ** 2).sum()
        b += len(hc) * ((mc - mu) ** 2).sum()
    return w / b


def test_spread_ratio_matches_brute_force():
    g = _gen(8)
    h = torch.randn(3, 600, 5, generator=g, dtype=torch.float64) + 3.0
    labels = torch.randint(0, 4, (600,), generator=g) * 10 + 2  # non-contiguous label values
    h[:, labels == 12] += 0.5
    want = torch.tensor([_spread_brute(h[s].numpy(), labels.numpy()) for s in range(3)], dtype=torch.float64)
    torch.testing.assert_close(cl.spread_ratio(h, labels), want, rtol=1e-10, atol=0)


@pytest.mark.parametrize("d,k", [(1, 2), (3, 2), (2, 4)])
def test_spread_ratio_uniform_closed_form(d, k):
    # X ~ U[0,1]^d, y = floor(k x_1): per class dim 1 is U on width 1/k (var 1/(12k^2)), the other
    # dims var 1/12, so W = 1/(12k^2) + (d-1)/12; centroids (c+1/2)/k have variance
    # B = (k^2-1)/(12k^2).  Ratio = (1 + (d-1)k^2)/(k^2 - 1).
    N, S = 20000, 4
    h = torch.rand(S, N, d, generator=_gen(9), dtype=torch.float64)
    labels = (h[0, :, 0] * k).floor().long()
    h[:, :, 0] = h[0, :, 0]  # same labelling dimension in every seed
    exact = (1 + (d - 1) * k * k) / (k * k - 1)
    got = cl.spread_ratio(h, labels)
    # relative sd of W and B estimates is O(1/sqrt(N)) ~ 1e-2; allow 5%
    torch.testing.assert_close(got, torch.full((S,), exact, dtype=torch.float64), rtol=0.05, atol=0)


def test_spread_ratio_independent_labels_expectation():
    # labels independent of h, fixed class sizes: E[W] = sigma^2 d (N-K)/N, E[B] = sigma^2 d (K-1)/N.
    # Check the ratio of means over many seeds (1000 seeds: relative sd of mean B ~ 1/sqrt(1000*(K-1)d)).
    S, N, d, K = 1000, 64, 3, 4
    h = torch.rand(S, N, d, generator=_gen(10), dtype=torch.float64)
    labels = torch.arange(K).repeat(N // K)
    x = h - h.mean(1, keepdim=True)
    # recover W and B per seed from the ratio and W + B = total variance
    total = x.pow(2).sum(-1).mean(1)
    r = cl.spread_ratio(h, labels)
    b = total / (1 + r)
    w = total - b
    assert abs(w.mean().item() / b.mean().item() - (N - K) / (K - 1)) < 0.05 * (N - K) / (K - 1)


# ---------------------------------------------------------------------------------------- pairs


def test_close_pairs_matches_brute_force_and_chunks():
    g = _gen(11)
    h = torch.rand(3, 300, 4, generator=g)
    h[:, 250:] = h[:, :50] + 1e-3  # some very close pairs
    r = 0.25
    want = torch.tensor([(pdist(h[s].double().numpy()) < r).mean() for s in range(3)])
    got = cl.close_pair_fraction(h, r)
    torch.testing.assert_close(got, want.float(), atol=1e-7, rtol=0)
    for c in (1, 7, 299, 300, 1000):
        torch.testing.assert_close(cl.close_pair_fraction(h, r, chunk=c), got, atol=0, rtol=0)


def test_close_pairs_pruned_window_matches_brute_force():
    # sorted-window pruning: elongated data (largest variance on dim 2), many pairs near the radius,
    # duplicates, and a radius covering everything
    g = _gen(15)
    h = torch.rand(2, 1200, 3, generator=g, dtype=torch.float64) * torch.tensor([0.2, 0.1, 5.0], dtype=torch.float64)
    h[:, 600:] = h[:, :600].flip(1)
    h[:, 1100:, 2] = h[:, 1000:1100, 2] + 0.05  # pairs at distance ~ the radius along the sort axis
    for r in (0.05, 0.3, 100.0):
        want = torch.tensor([(pdist(h[s].numpy()) < r).mean() for s in range(2)], dtype=torch.float64)
        torch.testing.assert_close(cl.close_pair_fraction(h, r), want, atol=1e-15, rtol=0)
        torch.testing.assert_close(cl.close_pair_fraction(h, r, chunk=37), want, atol=1e-15, rtol=0)
    assert cl.close_pair_fraction(h, 100.0).tolist() == [1.0, 1.0]


def test_close_pairs_known_structure():
    # k clusters of n identical points far apart: close pairs = k*C(n,2) / C(kn,2)
    k, n = 4, 25
    h = (torch.arange(k).repeat_interleave(n).float() * 10)[None, :, None].expand(2, -1, 3).contiguous()
    exact = k * n * (n - 1) / ((k * n) * (k * n - 1))
    torch.testing.assert_close(cl.close_pair_fraction(h, 0.01), torch.full((2,), exact), atol=1e-7, rtol=0)
    assert cl.close_pair_fraction(h, 0.0).tolist() == [0.0, 0.0]  # strict '<'


# ---------------------------------------------------------------------------------------- cosine


def _cos_brute(h: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    norms = np.linalg.norm(h, axis=1, keepdims=True)
    u = np.divide(h, norms, out=np.zeros_like(h), where=norms > 0)
    c = u @ u.T
    same = y[:, None] == y[None, :]
    off = ~np.eye(len(y), dtype=bool)
    return c[same & off].mean(), c[~same].mean()


def test_cosine_within_between_matches_brute_force():
    g = _gen(12)
    h = torch.randn(3, 401, 6, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 5, (401,), generator=g)
    h[:, labels == 2] += 2.0  # one class aligned
    h[:, 7] = 0.0              # a zero vector: similarity 0 to everything
    want = np.array([_cos_brute(h[s].numpy(), labels.numpy()) for s in range(3)])
    cw, cb = cl.cosine_similarity_within_between(h, labels)
    torch.testing.assert_close(cw, torch.tensor(want[:, 0]), atol=1e-12, rtol=0)
    torch.testing.assert_close(cb, torch.tensor(want[:, 1]), atol=1e-12, rtol=0)
    cw2, cb2 = cl.cosine_similarity_within_between(h, labels, chunk=17)
    torch.testing.assert_close(cw2, cw, atol=1e-12, rtol=0)
    torch.testing.assert_close(cb2, cb, atol=1e-12, rtol=0)
    # float32 input agrees with the float64 brute force to float32 precision
    cw32, cb32 = cl.cosine_similarity_within_between(h.float(), labels)
    torch.testing.assert_close(cw32, torch.tensor(want[:, 0]).float(), atol=1e-6, rtol=0)
    torch.testing.assert_close(cb32, torch.tensor(want[:, 1]).float(), atol=1e-6, rtol=0)


def test_cosine_collapsed_classes_exact():
    # class 0 all along e1, class 1 all along e2: within = 1, between = 0
    labels = torch.tensor([0, 0, 0, 1, 1])
    h = torch.tensor([[1.0, 0], [2, 0], [0.5, 0], [0, 3], [0, 1]])[None].expand(2, -1, -1)
    cw, cb = cl.cosine_similarity_within_between(h, labels)
    assert cw.tolist() == [1.0, 1.0] and cb.tolist() == [0.0, 0.0]


# ---------------------------------------------------------------------------------------- homogeneity


def _two_cells(counts: list[list[int]]):
    """One seed; cell j (position 0.5 + j) holds counts[j][y] points of class y."""
    pos, lab = [], []
    for j, row in enumerate(counts):
        for y, n in enumerate(row):
            pos += [0.5 + j] * n
            lab += [y] * n
    return torch.tensor(pos)[None, :, None], torch.tensor(lab)


def test_homogeneity_pure_mixed_and_independent():
    # pure: cell 0 = 4 x class 0, cell 1 = 4 x class 1
    h, y = _two_cells([[4, 0], [0, 4]])
    assert cl.partition_homogeneity(h, y, 1.0).tolist() == [1.0]
    assert cl.partition_purity(h, y, 1.0).tolist() == [1.0]
    # mixed: cell A = 3 x class 0 + 1 x class 1, cell B = 4 x class 1 (N = 8)
    h, y = _two_cells([[3, 1], [0, 4]])
    hb = lambda p: -p * math.log2(p) - (1 - p) * math.log2(1 - p)  # noqa: E731
    exact = 1 - (0.5 * hb(0.25)) / hb(3 / 8)
    assert abs(cl.partition_homogeneity(h, y, 1.0).item() - exact) < 1e-6
    assert abs(cl.partition_purity(h, y, 1.0).item() - 7 / 8) < 1e-7
    # independent: both cells 2 + 2 -> H(Y|C) = H(Y), homogeneity 0, purity 1/2
    h, y = _two_cells([[2, 2], [2, 2]])
    assert abs(cl.partition_homogeneity(h, y, 1.0).item()) < 1e-7
    assert abs(cl.partition_purity(h, y, 1.0).item() - 0.5) < 1e-7
    # a single class is trivially homogeneous
    h, y = _two_cells([[3], [5]])
    assert cl.partition_homogeneity(h, y, 1.0).tolist() == [1.0]


def test_homogeneity_matches_brute_force():
    g = _gen(13)
    h = torch.rand(2, 500, 2, generator=g)
    labels = (h[0, :, 0] > 0.5).long() ^ (torch.rand(500, generator=g) < 0.2).long()
    for s in range(2):
        cells = np.floor(h[s].numpy() / 0.25).astype(int)
        _, cid = np.unique(cells, axis=0, return_inverse=True)
        joint = np.zeros((cid.max() + 1, 2))
        np.add.at(joint, (cid.ravel(), labels.numpy()), 1)
        p = joint / 500
        pc, py = p.sum(1), p.sum(0)
        nz = p > 0
        i_cy = (p[nz] * np.log2(p[nz] / (pc[:, None] * py[None, :])[nz])).sum()
        h_y = -(py * np.log2(py)).sum()
        assert abs(cl.partition_homogeneity(h, labels, 0.25)[s].item() - i_cy / h_y) < 1e-5
        assert abs(cl.partition_purity(h, labels, 0.25)[s].item() - joint.max(1).sum() / 500) < 1e-6


# ---------------------------------------------------------------------------------------- all


def test_clustering_measures_bundle_and_nan_seed():
    g = _gen(14)
    h = torch.rand(3, 200, 4, generator=g) * 2 - 1
    labels = torch.randint(0, 3, (200,), generator=g)
    out = cl.clustering_measures(h, labels, bin_size=0.5, radius=0.3)
    assert set(out) == set(cl.DEFINITIONS)
    cw, cb = cl.cosine_similarity_within_between(h, labels)
    singles = {
        "cells": cl.occupied_cells(h, 0.5), "H_bin": cl.binned_entropy(h, 0.5),
        "spread_ratio": cl.spread_ratio(h, labels), "close_pairs": cl.close_pair_fraction(h, 0.3),
        "cos_within": cw, "cos_between": cb, "homogeneity": cl.partition_homogeneity(h, labels, 0.5),
    }
    for name, v in singles.items():
        assert out[name].shape == (3,) and out[name].dtype == h.dtype
        torch.testing.assert_close(out[name], v, atol=0, rtol=0)
    # a diverged seed gives NaN for that seed only, others unchanged
    bad = h.clone()
    bad[1, 5, 2] = float("nan")
    out_bad = cl.clustering_measures(bad, labels, bin_size=0.5, radius=0.3)
    for name, v in out_bad.items():
        assert torch.isnan(v[1]) and torch.equal(v[[0, 2]], out[name][[0, 2]]), name


def test_input_validation():
    with pytest.raises(ValueError):
        cl.occupied_cells(torch.rand(10, 3), 0.1)
    with pytest.raises(ValueError):
        cl.spread_ratio(torch.rand(2, 10, 3), torch.zeros(9, dtype=torch.long))
    with pytest.raises(ValueError):
        cl.binned_entropy(torch.rand(2, 10, 3), 0.0)


@pytest.mark.gpu
def test_cuda_matches_cpu():
    # same numbers on the GPU: integer measures exactly, the rest to float32 rounding
    g = _gen(16)
    labels = torch.randint(0, 3, (3000,), generator=g)
    h = torch.tanh(torch.randn(4, 3000, 6, generator=g) + labels[None, :, None].float())
    h[:, :1000] = (h[:, :1000] * 5).round() / 5  # clustered part: duplicate cells and close pairs
    cpu = cl.clustering_measures(h, labels, bin_size=0.1, radius=0.05)
    gpu = cl.clustering_measures(h.cuda(), labels.cuda(), bin_size=0.1, radius=0.05)
    for name in cpu:
        assert gpu[name].device.type == "cuda", name
        torch.testing.assert_close(gpu[name].cpu(), cpu[name], atol=1e-5, rtol=1e-5, msg=name)
    assert torch.equal(gpu["cells"].cpu(), cpu["cells"]) and torch.equal(gpu["close_pairs"].cpu(), cpu["close_pairs"])
    assert torch.equal(cl.occupied_cells(h.cuda(), 1e-6).cpu(), cl.occupied_cells(h, 1e-6))  # hash path


def test_grid_measures_are_binning_at_width_b():
    """cells, H_bin and homogeneity are the binning estimator's partition at width B: H(T) and I(T;Y)/H(Y)."""
    from ibtui.measures.binning import BinSpec, binning_mi

    g = _gen(17)
    h = torch.rand(3, 800, 3, generator=g) * 2 - 1
    labels = torch.randint(0, 3, (800,), generator=g)
    mi = binning_mi(h, BinSpec(width=0.25, lo=0.0), labels)
    h_y = -sum(p * math.log2(p) for p in (torch.bincount(labels) / 800).tolist())
    out = cl.clustering_measures(h, labels, bin_size=0.25, radius=0.1)
    torch.testing.assert_close(out["H_bin"], mi["H(T)"], atol=1e-6, rtol=0)
    torch.testing.assert_close(out["homogeneity"], mi["I(T;Y)"] / h_y, atol=1e-6, rtol=0)
    want = [len(np.unique(np.floor(h[s].numpy() / 0.25), axis=0)) for s in range(3)]
    assert out["cells"].tolist() == want
