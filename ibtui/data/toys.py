"""The single-neuron saturation toy of Goldfeld et al. (ICML 2019, one noisy tanh neuron): its four inputs.

T = tanh(wX + b) + Z, X uniform on {−3, −1, 1, 3}, Z ~ N(0, β²). T is a mixture of four Gaussians,
so I(X;T) = h(T) − h(Z) is known to quadrature precision: it is 2 bits while the four images are
≫ β apart and falls to the entropy of the cluster weights when tanh saturates them together
(1 bit for a 2+2 split at b = 0, H(¼) = 0.811 bits for the 3+1 split at b = −2w). The engine's
"exact" estimator computes it (ibtui.measures.mixture); the tests keep it as the oracle of SP.
"""
from __future__ import annotations

import torch

from ibtui.data.dataset import Dataset

SATURATION_X = (-3.0, -1.0, 1.0, 3.0)


def saturation_labels() -> torch.Tensor:
    """Two classes, {−3, −1, 1} → 0 and {3} → 1 (the two-class version of Goldfeld et al. 2019), int64 [4]."""
    return torch.tensor([0, 0, 0, 1], dtype=torch.int64)


def saturation_dataset(n_seeds: int, device: torch.device) -> Dataset:
    """The four inputs of the toy, X uniform on {−3, −1, 1, 3}, for every seed.

    All four points train, and MI is measured on all four; there is no test set.
    """
    x = torch.tensor(SATURATION_X, dtype=torch.float32, device=device).reshape(-1, 1)
    train = torch.ones(n_seeds, len(x), dtype=torch.bool, device=device)
    return Dataset(name="saturation", x=x, y=saturation_labels().to(device), n_classes=2, train=train,
                   test=~train, distinct_inputs=True)
