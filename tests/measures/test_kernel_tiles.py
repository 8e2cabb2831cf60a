"""The tiled near-pair kernel sums (ibtui.measures.kernel_tiles), compiled and in PyTorch, against exact float64
pairwise sums."""
import math

import pytest
import torch

from ibtui.measures.kde import kde_mi, kde_mi_tiled
from ibtui.measures.kernel_tiles import TRUNCATION_NATS, cutoff_radius2, self_kernel_log_sums_tiled

KEYS = ("upper_xt", "lower_xt", "upper_ty", "lower_ty")


@pytest.fixture(autouse=True, params=["compiled", "pytorch"])
def summer(request, monkeypatch):
    """Every test runs on both paths: the compiled tile kernel (where a C compiler works) and PyTorch's sums."""
    from ibtui.measures import native

    if request.param == "pytorch":
        monkeypatch.setattr(native, "tile_sums", lambda: None)
    elif native.tile_sums() is None:
        pytest.skip("no working C compiler: the compiled tile kernel is not built")
    return request.param


def worst_bits(layers, labels, var, n_classes=None):
    """Largest |tiled − exact| over layers, seeds and the four quantities, in bits."""
    tiled = kde_mi_tiled(layers, labels, var, n_classes)
    worst = 0.0
    for h, got in zip(layers, tiled):
        exact = kde_mi(h.double(), labels, var, n_classes)
        worst = max(worst, *(float((got[k].double() - exact[k]).abs().max()) for k in KEYS))
    return worst


def test_spread_layers_match_exact_sums():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (700,), generator=g)
    layers = [torch.tanh(torch.randn(3, 700, d, generator=g) * 0.7) for d in (10, 5, 3, 2)]
    assert worst_bits(layers, labels, 1e-3) < 1e-5


def test_saturated_and_collapsed_layers_match_exact_sums():
    """Saturated tanh corners (many points a float32 ulp apart or identical), a layer collapsed to three
    points, and one collapsed to a single point (I(X;T) = I(T;Y) = 0 exactly)."""
    g = torch.Generator().manual_seed(1)
    n = 900
    labels = (torch.arange(n) % 3 == 0).long()  # unequal classes: 300 and 600
    corners = torch.tanh(20.0 * torch.randn(2, n, 10, generator=g))
    spots = torch.tensor([[0.9, -0.9, 0.2], [0.1, 0.1, 0.1], [-0.5, 0.95, 0.0]])
    three = spots[torch.arange(n) % 3].expand(2, n, 3).contiguous()
    single = torch.full((2, n, 4), 0.37)
    assert worst_bits([corners, three, single], labels, 1e-3) < 1e-5
    one = kde_mi_tiled([single], labels, 1e-3)[0]
    assert float(one["upper_xt"].abs().max()) < 1e-5 and float(one["upper_ty"].abs().max()) < 1e-5


def test_image_sizes_match_exact_sums():
    """MNIST-like: ten classes, wide layers, σ² = 0.1 (almost no pair is far enough to skip)."""
    g = torch.Generator().manual_seed(2)
    labels = torch.randint(0, 10, (1500,), generator=g)
    layers = [torch.tanh(torch.randn(2, 1500, d, generator=g) * 0.7) for d in (100, 20)]
    assert worst_bits(layers, labels, 0.1) < 1e-5


def test_far_pairs_are_skipped_within_the_stated_bound():
    """Two clusters just beyond the cut-off radius: their cross terms are skipped, and the sums differ from
    the exact ones by less than TRUNCATION_NATS (the bound's own size, not more)."""
    n_half, var = 200, 1e-3
    s_low = 1.0 / (8.0 * var)
    r = math.sqrt(cutoff_radius2(2 * n_half, s_low)) * 1.02
    g = torch.Generator().manual_seed(3)
    a = torch.rand(1, n_half, 2, generator=g) * 0.01
    x = torch.cat([a, a + torch.tensor([r + 0.02, 0.0])], dim=1)
    total, _ = self_kernel_log_sums_tiled(x, (4 * s_low, s_low), tile=64)
    exact_sq = torch.cdist(x.double(), x.double()).square()
    for k, s in enumerate((4 * s_low, s_low)):
        exact = torch.logsumexp(-s * exact_sq, dim=-1)
        assert float((total[k].double() - exact).abs().max()) < TRUNCATION_NATS + 1e-6
    # the cross terms were really left out: they alone are larger than float32 rounding of the sums
    cross = torch.logsumexp(-s_low * exact_sq[0, :n_half, n_half:], dim=-1)
    assert float(cross.max()) > math.log(1e-9)


def test_float64_points_are_summed_in_float64():
    g = torch.Generator().manual_seed(4)
    h = torch.tanh(torch.randn(2, 300, 4, generator=g, dtype=torch.float64))
    y = torch.randint(0, 3, (300,), generator=g)
    total, own = self_kernel_log_sums_tiled(h, (500.0, 125.0), y, 3)
    assert total.dtype == torch.float64
    sq = torch.cdist(h, h).square()
    same = y[:, None] == y[None, :]
    for k, s in enumerate((500.0, 125.0)):
        exact = torch.logsumexp(-s * sq, dim=-1)
        exact_own = torch.logsumexp((-s * sq).masked_fill(~same, -math.inf), dim=-1)
        assert float((total[k] - exact).abs().max()) < TRUNCATION_NATS
        assert float((own[k] - exact_own).abs().max()) < TRUNCATION_NATS


def test_small_and_unlabelled_sets_and_three_scales():
    x = torch.tensor([[[0.0], [0.01], [0.5], [0.51], [2.0]]])
    total, own = self_kernel_log_sums_tiled(x, (100.0, 200.0, 800.0))
    assert own is None and total.shape == (3, 1, 5)
    sq = torch.cdist(x.double(), x.double()).square()
    for k, s in enumerate((100.0, 200.0, 800.0)):
        assert torch.allclose(total[k].double(), torch.logsumexp(-s * sq, dim=-1), atol=1e-6)
    with pytest.raises(ValueError, match="power-of-two"):
        self_kernel_log_sums_tiled(x, (100.0, 300.0))


def test_large_batches_are_split_with_the_same_sums(monkeypatch):
    import ibtui.measures.kernel_tiles as kt

    g = torch.Generator().manual_seed(5)
    h = torch.tanh(torch.randn(5, 200, 3, generator=g))
    y = torch.randint(0, 2, (200,), generator=g)
    whole = self_kernel_log_sums_tiled(h, (500.0, 125.0), y, 2)
    monkeypatch.setattr(kt, "OPERAND_ELEMENTS", 2 * 200 * 13)
    split = self_kernel_log_sums_tiled(h, (500.0, 125.0), y, 2)
    assert torch.equal(whole[0], split[0]) and torch.equal(whole[1], split[1])


def test_a_diverged_seed_gets_nan_and_the_others_their_sums():
    g = torch.Generator().manual_seed(6)
    h = torch.tanh(torch.randn(3, 150, 4, generator=g))
    y = torch.randint(0, 2, (150,), generator=g)
    clean = kde_mi_tiled([h], y, 1e-3)[0]
    h[1, 7, 2] = float("nan")
    h[2, 3, 0] = float("inf")
    broken = kde_mi_tiled([h], y, 1e-3)[0]
    for k in KEYS:
        assert torch.isnan(broken[k][1:]).all()
        assert torch.allclose(broken[k][0], clean[k][0], atol=1e-6)
