"""The binning estimator against exact entropies of constructed discrete distributions."""
import math

import pytest
import torch

from ibtui.measures.binning import BinSpec, bin_indices, binning_mi
from ibtui.measures.discrete import dense_ids, entropy_of_ids, row_keys


def layer_with_cells(cell_of_sample: torch.Tensor, d: int = 3, n_bins: int = 30) -> torch.Tensor:
    """Activations [1, N, d] whose binned rows are a given cell id per sample (centres of bins)."""
    width = 2.0 / n_bins
    digits = torch.stack([(cell_of_sample // n_bins**j) % n_bins for j in range(d)], dim=-1)
    return (-1.0 + (digits.float() + 0.5) * width).unsqueeze(0)


@pytest.mark.parametrize("k", [1, 2, 4, 7, 16, 64])
def test_k_equiprobable_cells_give_log2_k_bits(k):
    n = 64 * 7
    h = layer_with_cells(torch.arange(n) % k)
    mi = binning_mi(h, BinSpec(), labels=None)
    assert mi["I(X;T)"].item() == pytest.approx(math.log2(k), abs=1e-5)
    assert mi["H(T|X)"].item() == 0.0


def test_constant_layer_is_zero_bits():
    h = torch.full((3, 500, 4), 0.3)
    mi = binning_mi(h, BinSpec(), labels=torch.arange(500) % 2)
    assert torch.all(mi["I(X;T)"] == 0) and torch.all(mi["I(T;Y)"] == 0)


def test_twelve_bit_ceiling():
    # 4096 distinct inputs, each in its own cell: I(X;T) reaches log2 4096 = 12 bits and no more.
    h = layer_with_cells(torch.arange(4096), d=3)
    assert binning_mi(h, BinSpec(), None)["I(X;T)"].item() == pytest.approx(12.0, abs=1e-5)
    wide = torch.rand(2, 4096, 10) * 2 - 1
    assert torch.all(binning_mi(wide, BinSpec(n_bins=1000), None)["I(X;T)"] <= 12.0 + 1e-5)


def test_mutual_information_with_labels_exact():
    # 4 equiprobable cells; label = cell // 2 → I(T;Y) = H(Y) = 1 bit; label = cell % 2 with 4 cells → 1 bit;
    # label independent of cell (cells 0..3 each half 0, half 1) → 0 bits.
    n = 4000
    cell = torch.arange(n) % 4
    h = layer_with_cells(cell)
    assert binning_mi(h, BinSpec(), cell // 2)["I(T;Y)"].item() == pytest.approx(1.0, abs=1e-5)
    indep = (torch.arange(n) // 4) % 2
    assert binning_mi(h, BinSpec(), indep)["I(T;Y)"].item() == pytest.approx(0.0, abs=1e-5)
    # A skewed case: cells {0,1,2,3} w.p. 1/4; Y = 1 only in cell 3 → I = H(1/4) = 0.811278 bits.
    assert binning_mi(h, BinSpec(), (cell == 3).long())["I(T;Y)"].item() == pytest.approx(0.8112781, abs=1e-5)


def test_repeated_inputs_use_h_t_given_x():
    # 16 distinct inputs repeated 256 times (the boolean task's situation): T a function of x → I(X;T) = H(T),
    # and H(T|X) is computed, not assumed. A T that varies within repeats of one x has H(T|X) > 0.
    x_ids = torch.arange(4096) % 16
    h = layer_with_cells(x_ids % 8)
    mi = binning_mi(h, BinSpec(), None, x_ids=x_ids)
    assert mi["I(X;T)"].item() == pytest.approx(3.0, abs=1e-5) and mi["H(T|X)"].item() == pytest.approx(0.0, abs=1e-6)
    noisy = layer_with_cells((torch.arange(4096) // 16) % 2)  # half the repeats of each x in each of 2 cells
    mi = binning_mi(noisy, BinSpec(), None, x_ids=x_ids)
    assert mi["H(T|X)"].item() == pytest.approx(1.0, abs=1e-5) and mi["I(X;T)"].item() == pytest.approx(0.0, abs=1e-5)


def test_edges_and_width_mode():
    h = torch.tensor([[[-5.0], [-1.0], [-0.999], [0.999], [1.0], [7.0]]])
    idx = bin_indices(h, BinSpec(n_bins=30)).flatten().tolist()
    assert idx == [0, 0, 0, 29, 29, 29]  # values outside the range go to the edge bins
    w = bin_indices(torch.tensor([[[0.0], [0.069], [0.07], [-0.01]]]), BinSpec(width=0.07, lo=0.0)).flatten()
    assert w.tolist() == [0, 0, 1, -1]


def test_per_seed_ranges():
    # Seed 0 spans [0, 1], seed 1 spans [0, 100]: with per-seed ranges both fill the same 4 bins.
    base = torch.tensor([0.1, 0.3, 0.6, 0.9]).repeat(25).reshape(1, 100, 1)
    h = torch.cat([base, base * 100])
    spec = BinSpec(n_bins=4, lo=torch.zeros(2), hi=torch.tensor([1.0, 100.0]))
    assert binning_mi(h, spec, None)["I(X;T)"].tolist() == pytest.approx([2.0, 2.0], abs=1e-5)


def test_hash_path_agrees_with_exact_packing():
    torch.manual_seed(0)
    idx = torch.randint(0, 3, (2, 3000, 8))  # 3**8 cells: packs exactly
    exact = entropy_of_ids(dense_ids(row_keys(idx))[0])
    wide = torch.cat([idx, torch.zeros(2, 3000, 60, dtype=torch.int64) + 1000 * torch.arange(60)], dim=-1)
    wide[:, :, 8:] += (torch.arange(60) % 2) * 5  # > 62 bits of range: takes the hash path
    hashed = entropy_of_ids(dense_ids(row_keys(wide))[0])
    assert torch.allclose(exact, hashed)


def test_seeds_are_independent():
    torch.manual_seed(1)
    h = torch.rand(3, 1000, 4) * 2 - 1
    y = torch.randint(0, 2, (1000,))
    together = binning_mi(h, BinSpec(), y)
    for s in range(3):
        alone = binning_mi(h[s:s + 1], BinSpec(), y)
        assert together["I(X;T)"][s] == alone["I(X;T)"][0] and together["I(T;Y)"][s] == alone["I(T;Y)"][0]


def test_fast_cell_keys_partition_like_integer_packing():
    from ibtui.measures.binning import cell_keys

    torch.manual_seed(4)
    h = torch.cat([torch.rand(3, 2000, 6) * 2.4 - 1.2, torch.full((3, 1, 6), 1.0)], dim=1)  # edges and outside
    for spec in (BinSpec(), BinSpec(n_bins=7, lo=-0.5, hi=0.5),
                 BinSpec(n_bins=30, lo=torch.tensor([-1.0, 0.0, -2.0]), hi=torch.tensor([1.0, 1.0, 2.0]))):
        fast = dense_ids(cell_keys(h, spec))[0]
        slow = dense_ids(row_keys(bin_indices(h, spec)))[0]
        assert torch.equal(fast, slow)
