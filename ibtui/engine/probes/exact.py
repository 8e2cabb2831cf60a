"""Exact I(X;T_1), I(T_1;Y) of the saturation toy's noisy one-unit first layer (numerical quadrature)."""
from __future__ import annotations

import math

import torch

from ibtui import quantities as Q
from ibtui.engine.context import RunContext
from ibtui.engine.probes.base import Probe
from ibtui.engine.snapshot import Snapshot, Values


class ExactProbe(Probe):
    """Exact I(X;T_1) and I(T_1;Y) of a noisy first hidden layer of one unit (the saturation toy).

    Given X = x, T_1 = s(x) + Z with Z ~ N(0, β²): a single Gaussian. So h(T_1) is the entropy of a 1-D
    mixture of Gaussians at the noiseless images of the measured inputs, integrated numerically with
    scipy (ibtui.measures.mixture), and I(X;T_1) = h(T_1) − ½ log2(2πeβ²). One quadrature per seed.
    """

    def __init__(self, ctx: RunContext):
        self.estimators = {"exact": "numerical integration (scipy quad) of the noisy 1-unit first layer's "
                                    "Gaussian-mixture entropy; no estimate"}

    def at_snapshot(self, snap: Snapshot) -> Values:
        from ibtui.measures.mixture import mixture_entropy_1d

        beta = snap.beta
        if beta <= 0:
            return {}
        centres = snap.layers[0][..., 0].double().cpu().numpy()  # [S, n]
        labels = snap.labels.cpu().numpy()
        h_z = 0.5 * math.log2(2 * math.pi * math.e * beta**2)
        xt, ty = [], []
        for row, c in enumerate(centres):
            y = labels if labels.ndim == 1 else labels[row]
            h_t = mixture_entropy_1d(c, None, beta)
            h_t_y = sum((y == k).mean() * mixture_entropy_1d(c[y == k], None, beta) for k in set(y.tolist()))
            xt.append(h_t - h_z)
            ty.append(h_t - h_t_y)
        dev = snap.layers[0].device
        return {("1", Q.MI_XT, "exact"): torch.tensor(xt, device=dev),
                ("1", Q.MI_TY, "exact"): torch.tensor(ty, device=dev)}
