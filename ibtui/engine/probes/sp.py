"""Sample-propagation I(X;T), I(T;Y) of the hidden layers of a noisy network (Goldfeld et al. 2019)."""
from __future__ import annotations

from typing import Callable

import torch

from ibtui import quantities as Q
from ibtui.engine import rng
from ibtui.engine.context import RunContext
from ibtui.engine.probes.base import Probe, per_labels
from ibtui.engine.snapshot import Snapshot, Values
from ibtui.measures.sp import sp_mutual_information


class SpProbe(Probe):
    """Sample-propagation estimates for the hidden layers of a noisy network (Goldfeld et al. 2019).

    For each measured input, `samples` noisy passes through the earlier layers give the centres of
    its conditional mixture; SP then integrates the Gaussian-mixture entropies by Monte Carlo. With
    β = 0 the true I(X;T) of a deterministic network is not finite, so nothing is recorded.
    """

    def __init__(self, ctx: RunContext):
        self.ctx = ctx
        self.settings = ctx.sc.measure.sp
        st = self.settings
        where = f"averaged over {st.points} inputs" if st.points else "averaged over all MI inputs"
        self.estimators = {"sp": f"sample propagation with the network's noise β, {st.samples} noisy passes a "
                                 f"input, {st.mc} Monte Carlo draws an input, {where}"}
        if min(ctx.sc.model.noise_levels) == 0:
            self.notes = ("sp: no value while the noise level β is 0 (I(X;T) of a deterministic network is not "
                          "finite)",)

    def at_snapshot(self, snap: Snapshot) -> Values:
        return self.start(snap)(snap)

    def start(self, snap: Snapshot) -> Callable[[Snapshot], Values]:
        """Now: the network's own noisy forward on the measured inputs (it reads the weights). Later (maybe on
        a worker thread, ibtui.engine.overlap): the mixture sums, which read only that forward's outputs."""
        beta = snap.beta
        if beta <= 0:
            return lambda final: {}
        st, ctx = self.settings, self.ctx
        n = snap.layers[0].shape[1]
        idx = snap.point_idx
        s = ctx.seed_tensor.shape[0]
        if idx is None:
            idx = torch.arange(n, device=ctx.seed_tensor.device).expand(s, n)
        labels = ctx.data.y[idx]
        m = idx.shape[1]
        x = ctx.data.x.reshape(ctx.data.x.shape[0], -1)[idx]  # [S, m, d_in]
        x = x.repeat_interleave(st.samples, dim=1)  # [S, m·k, d_in], copies of x_i adjacent
        if ctx.sc.model.kind != "mlp":  # convolutional models take images [S, m·k, C, H, W]
            x = x.reshape(*x.shape[:2], *ctx.data.x.shape[1:])
        noise = rng.noise_fn(ctx.seed_tensor, (rng.STREAM_MEASURE, snap.epoch))
        with torch.no_grad():  # the network's own noisy forward on the measured inputs
            _, hidden = ctx.model(x, beta, noise)
        epoch = snap.epoch

        def sums(final: Snapshot) -> Values:
            gen = torch.Generator(device=ctx.seed_tensor.device).manual_seed(epoch * 7919 + 17)
            # X is uniform over all m measured inputs (every centre enters the pooled mixture); the Monte
            # Carlo average runs over `points` of them, which only widens the standard error.
            sp = lambda c, y: sp_mutual_information(c, y, beta, st.mc, generator=gen, n_points=st.points or None)  # noqa: E731
            out: Values = {}
            with torch.no_grad():
                for index, h in enumerate(hidden, start=1):
                    mi = per_labels(sp, h.reshape(s, m, st.samples, -1), labels)
                    out[(str(index), Q.MI_XT, "sp")] = mi["mi_xt"]
                    out[(str(index), Q.MI_XT_SE, "sp")] = mi["mi_xt_se"]
                    out[(str(index), Q.MI_TY, "sp")] = mi["mi_ty"]
                    out[(str(index), Q.MI_TY_SE, "sp")] = mi["mi_ty_se"]
            return out

        return sums
