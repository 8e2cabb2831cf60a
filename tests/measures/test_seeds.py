"""The `mean` rows: a mean over seeds, and for a standard error the SE of that mean."""
import math

import torch

from ibtui.measures.seeds import seed_mean


def test_mean_row_of_a_quantity_is_the_mean_of_its_finite_seeds():
    assert seed_mean(torch.tensor([1.0, 2.0, math.nan, 6.0])) == 3.0
    assert math.isnan(seed_mean(torch.tensor([math.nan, math.inf])))


def test_mean_row_of_a_standard_error_is_the_se_of_the_seed_mean():
    """Independent seeds: Var(mean) = Σ SE_i² / n², so SEs 0.3 and 0.4 give √0.25 / 2 = 0.25 (not their mean
    0.35)."""
    assert math.isclose(seed_mean(torch.tensor([0.3, 0.4]), "I(X;T)_se"), 0.25, rel_tol=1e-6)
    assert math.isclose(seed_mean(torch.tensor([0.2] * 4 + [math.nan]), "I(T;Y)_se"), 0.1, rel_tol=1e-6)
    assert math.isclose(seed_mean(torch.tensor([0.3, 0.4]), "I(X;T)"), 0.35, rel_tol=1e-6)
