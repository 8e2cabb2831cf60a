"""Sample-propagation I(X;T), I(T;Y) of the hidden layers of a noisy network (Goldfeld et al. 2019)."""
from __future__ import annotations

from typing import Callable

import torch

from ibtui import quantities as Q
from ibtui.engine import rng
from ibtui.engine.context import RunContext
from ibtui.data.sampling import fixed_subset
from ibtui.engine.probes.base import Probe
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
        where = (f"averaged over a fixed subset of {st.points} inputs a seed (drawn once from the seed; its "
                 f"sampling counted in the SE)" if st.points else "averaged over all MI inputs")
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
        noise = rng.noise_fn(ctx.seed_tensor, (rng.STREAM_MEASURE, snap.counter))
        with torch.no_grad():  # the network's own noisy forward on the measured inputs
            _, hidden = ctx.model(x, beta, noise)
        epoch = snap.counter

        def sums(final: Snapshot) -> Values:
            # One call a seed: its own fixed inputs and its own random draws, both functions of (seed, epoch,
            # layer) only, so a seed's SP does not depend on the seeds beside it and its sampling error is its own
            # (independent across seeds, where the seed bootstrap sees it).
            keys = rng.hash_bits(ctx.seed_tensor, (rng.STREAM_MEASURE, _SP_DRAWS, epoch), len(hidden)).tolist()
            subsets = fixed_inputs(ctx.seed_tensor, m, st.points)
            dev = ctx.seed_tensor.device
            out: Values = {}
            with torch.no_grad():
                for index, h in enumerate(hidden, start=1):
                    h = h.reshape(s, m, st.samples, -1)
                    parts = []
                    for i in range(s):
                        gen = torch.Generator(device=dev).manual_seed(keys[i][index - 1])
                        parts.append(sp_mutual_information(h[i:i + 1], labels[i], beta, st.mc, generator=gen,
                                                           points=subsets[i]))
                    mi = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
                    out[(str(index), Q.MI_XT, "sp")] = mi["mi_xt"]
                    out[(str(index), Q.MI_XT_SE, "sp")] = mi["mi_xt_se"]
                    out[(str(index), Q.MI_TY, "sp")] = mi["mi_ty"]
                    out[(str(index), Q.MI_TY_SE, "sp")] = mi["mi_ty_se"]
            return out

        return sums


# Sub-stream tags of STREAM_MEASURE (the network's measuring forward uses (STREAM_MEASURE, epoch)).
_SP_DRAWS = 0x5350  # the Monte Carlo draws
_SP_INPUTS = 0x5351  # the fixed inputs


def fixed_inputs(seeds: torch.Tensor, m: int, points: int) -> list[torch.Tensor | None]:
    """Per seed, the positions (of the m measured inputs) its SP average runs over: a subset of `points` drawn once
    from the seed id — the same at every snapshot — or None (all inputs) when points is 0 or ≥ m."""
    keys = rng.hash_bits(seeds, (rng.STREAM_MEASURE, _SP_INPUTS), 1)[:, 0].tolist()
    return [fixed_subset(m, points, seed=k, device=seeds.device) for k in keys]

