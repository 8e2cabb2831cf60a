"""The saturation toy of Goldfeld et al. (2019): exact MI against an independent quadrature table and its limits;
SP against quadrature."""
import math

import numpy as np
import pytest
import torch

from ibtui.data.toys import SATURATION_X, saturation_labels
from oracles import saturation_mi_exact, saturation_mi_sp
from ibtui.measures.sp import sp_mutual_information

H_QUARTER = -(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75))  # 0.8113 bits

# (β, w, I at b = 0, I at b = −2w): exact I(X;T_1) in bits of the single noisy tanh neuron, computed once by an
# independent quadrature; the limits are the entropies of the cluster weights (1 bit for 2+2, H(¼) for 3+1)
TABLE = [
    (0.01, 0.01, 1.219, 1.219), (0.01, 0.1, 2.000, 2.000), (0.01, 0.5, 2.000, 2.000), (0.01, 1, 2.000, 1.521),
    (0.01, 2, 1.865, 1.405), (0.01, 5, 1.000, 0.811), (0.01, 50, 1.000, 0.811),
    (0.005, 0.01, 1.869, 1.869), (0.005, 1, 2.000, 1.576), (0.005, 2, 1.999, 1.500), (0.005, 5, 1.000, 0.811),
    (0.1, 0.1, 1.189, 1.151), (0.1, 0.5, 1.948, 1.528), (0.1, 1, 1.590, 1.219), (0.1, 2, 1.023, 0.827),
    (0.1, 5, 1.000, 0.811),
]


def test_constants_and_labels():
    assert SATURATION_X == (-3.0, -1.0, 1.0, 3.0)
    assert saturation_labels().tolist() == [0, 0, 0, 1]
    assert saturation_labels().dtype == torch.int64


@pytest.mark.parametrize("beta,w,i_b0,i_bm2w", TABLE)
def test_exact_reproduces_table(beta, w, i_b0, i_bm2w):
    assert saturation_mi_exact(w, 0.0, beta) == pytest.approx(i_b0, abs=0.002)
    assert saturation_mi_exact(w, -2.0 * w, beta) == pytest.approx(i_bm2w, abs=0.002)


def test_b0_sweep_peaks_at_2_bits_and_ends_at_1_bit():
    ws = np.logspace(-2, 2, 25)
    mi = np.array([saturation_mi_exact(w, 0.0, 0.01) for w in ws])
    assert mi.max() == pytest.approx(2.0, abs=1e-3)
    assert mi[-1] == pytest.approx(1.0, abs=1e-3)
    assert np.all(mi <= 2.0 + 1e-9) and np.all(mi >= 1.0 - 1e-3)


def test_three_plus_one_limit_is_h_quarter():
    assert saturation_mi_exact(50.0, -100.0, 0.01) == pytest.approx(H_QUARTER, abs=1e-3)
    assert saturation_mi_exact(50.0, -100.0, 0.1) == pytest.approx(H_QUARTER, abs=1e-3)


@pytest.mark.parametrize("beta", [0.01, 0.1])
@pytest.mark.parametrize("bias", [0.0, -2.0])
def test_sp_matches_quadrature_on_w_grid(beta, bias):
    ws = torch.tensor([0.01, 0.1, 0.5, 1.0, 2.0, 5.0, 50.0], dtype=torch.float64)
    gen = torch.Generator().manual_seed(int(1000 * beta) + int(bias))
    mi, se = saturation_mi_sp(ws, bias * ws, beta, n_mc=4000, generator=gen)
    exact = torch.tensor([saturation_mi_exact(w, bias * w, beta) for w in ws.tolist()], dtype=torch.float64)
    err = (mi - exact).abs()
    assert torch.all(err <= 0.02), err
    assert torch.all(err <= 3 * se + 1e-6), (err, se)  # se = 0 where every draw gives the same value


def test_sp_label_information_at_3_plus_1_saturation():
    # w large, b = −2w: images {−1, −1, −1, +1} are the classes {−3,−1,1} vs {3}: I(T;Y) = H(Y) = H(1/4)
    w = torch.tensor([50.0])
    c = torch.tanh(w.view(-1, 1) * torch.tensor(SATURATION_X) - 2 * w.view(-1, 1))
    out = sp_mutual_information(c[:, :, None, None], saturation_labels(), 0.01, n_mc=100,
                                generator=torch.Generator().manual_seed(0))
    assert out["mi_ty"].item() == pytest.approx(H_QUARTER, abs=1e-4)
    assert out["mi_xt"].item() == pytest.approx(H_QUARTER, abs=1e-4)
