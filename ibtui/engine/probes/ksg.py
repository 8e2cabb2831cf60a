"""KSG (Kraskov et al. 2004, estimator 1) I(X;T), I(T;Y) of every layer, on a noisy draw when the network is noisy."""
from __future__ import annotations

from typing import Callable

import torch

from ibtui import quantities as Q
from ibtui.engine import rng
from ibtui.engine.context import RunContext
from ibtui.engine.probes.base import Probe, shared_labels, subset_indices
from ibtui.engine.snapshot import Snapshot, Values
from ibtui.measures.ksg import block_rows, jittered, ksg_layer, max_norm_distances

HIGH_DIMENSION = 20  # inputs wider than this get a note: KSG's I(X;T) is biased low there
KSG_NOISE_STREAM = 7  # counter of the noisy pass, apart from SP's (STREAM_MEASURE, epoch) draws


def ksg_description(st) -> str:
    """The estimator's one-line definition and settings (run info, sidecar, `?` help, figure titles)."""
    where = f"on {st.points} of the MI points" if st.points else "on all MI points"
    return (f"KSG estimator 1, k = {st.k}: I = ψ(k)+ψ(N)−⟨ψ(n_x+1)+ψ(n_t+1)⟩, max-norm at unit variance, labels ∞ "
            f"apart (Ross 2014); a noisy pass when β > 0; {where}")


class KsgProbe(Probe):
    """KSG estimates of every layer, all seeds at once. With β > 0 the hidden layers are measured on one noisy
    forward pass of the measured inputs (the noisy T whose I(X;T) is finite); with β = 0, on the noiseless layers
    (a continuous T: KSG then measures how the layer spreads the inputs, not a finite true I(X;T))."""

    def __init__(self, ctx: RunContext):
        self.ctx = ctx
        self.settings = ctx.sc.measure.ksg
        self.estimators = {"ksg": ksg_description(self.settings)}
        self.points = {"ksg": self.settings.points}
        self._inputs: tuple[torch.Tensor | None, torch.Tensor] | None = None  # (idx, X's max-norm distances)
        d_in = ctx.data.x[0].numel()
        if d_in > HIGH_DIMENSION:
            self.notes = (f"ksg: kNN estimates fall below the true value as the dimension grows (Gao, Ver Steeg & "
                          f"Galstyan 2015), and I(X;T) here is measured against {d_in}-dimensional inputs: read "
                          f"KSG's I(X;T) as a trend at best, and its values on wide layers with the same care.",)

    def _points(self, snap: Snapshot) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(kept positions among the snapshot's points or None, their indices in the data set [S, n] or None)."""
        keep = subset_indices(snap.layers[0].shape[1], self.settings.points, snap.layers[0].device)
        idx = snap.point_idx
        if keep is not None:
            idx = keep.unsqueeze(0) if idx is None else idx[:, keep]
        return keep, idx

    def _x_distances(self, idx: torch.Tensor | None) -> torch.Tensor:
        """Max-norm distances [1 or S, n, n] between the measured inputs (jittered, fixed for the run)."""
        cached = self._inputs
        if cached is not None and (cached[0] is None) == (idx is None) and (idx is None or torch.equal(cached[0], idx)):
            return cached[1]
        x = self.ctx.data.x
        flat = x.reshape(x.shape[0], -1)
        one = idx if idx is None or not bool((idx == idx[:1]).all()) else idx[:1]
        v = jittered(flat.unsqueeze(0) if one is None else flat[one], seed=0)
        n = v.shape[1]
        step = block_rows(v.shape[0], n)
        dist = torch.cat([max_norm_distances(v, i, min(n, i + step)) for i in range(0, n, step)], dim=1)
        self._inputs = (None if idx is None else idx.clone(), dist)
        return dist

    def at_snapshot(self, snap: Snapshot) -> Values:
        return self.start(snap)(snap)

    def start(self, snap: Snapshot) -> Callable[[Snapshot], Values]:
        """Now: the noisy pass when β > 0 (it reads the weights). Later (maybe on a worker thread): the sums."""
        keep, idx = self._points(snap)
        labels = snap.labels if keep is None else snap.labels[..., keep]
        if snap.beta > 0:
            ctx = self.ctx
            s = ctx.seed_tensor.shape[0]
            rows = idx if idx is not None else torch.arange(ctx.data.x.shape[0], device=ctx.seed_tensor.device)
            rows = rows.expand(s, -1)
            noise = rng.noise_fn(ctx.seed_tensor, (rng.STREAM_MEASURE, snap.counter, KSG_NOISE_STREAM))
            x = ctx.data.x.reshape(ctx.data.x.shape[0], -1)[rows]  # [S, n, d_in]
            if ctx.sc.model.kind != "mlp":  # convolutional models take images [S, n, C, H, W]
                x = x.reshape(*x.shape[:2], *ctx.data.x.shape[1:])
            with torch.no_grad():
                _, layers = ctx.model(x, snap.beta, noise)
            layers = list(layers)
        else:
            layers = snap.layers if keep is None else [h[:, keep] for h in snap.layers]
        return lambda final: self._sums(layers, labels, idx)

    def _sums(self, layers: list[torch.Tensor], labels: torch.Tensor, idx: torch.Tensor | None) -> Values:
        k = min(self.settings.k, layers[0].shape[1] - 1)
        dx = self._x_distances(idx)
        shared = shared_labels(labels)
        out: Values = {}
        with torch.no_grad():
            for index, h in enumerate(layers, start=1):
                h = h.reshape(h.shape[0], h.shape[1], -1)
                if shared is not None:
                    xt, ty = ksg_layer(h, shared, dx, k)
                else:  # each seed its own points: its own labels (and inputs, when they differ)
                    parts = [ksg_layer(h[i:i + 1], labels[i], dx[i:i + 1] if dx.shape[0] > 1 else dx, k)
                             for i in range(h.shape[0])]
                    xt, ty = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
                out[(str(index), Q.MI_XT, "ksg")] = xt
                out[(str(index), Q.MI_TY, "ksg")] = ty
        return out
