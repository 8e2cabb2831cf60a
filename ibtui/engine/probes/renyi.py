"""Matrix-based Rényi I(X;T), I(T;Y) of every layer (Giraldo, Rao & Príncipe 2014; Yu et al. 2019)."""
from __future__ import annotations

import torch

from ibtui import quantities as Q
from ibtui.engine.context import RunContext
from ibtui.engine.probes.base import Probe, shared_labels, subset_indices
from ibtui.engine.snapshot import Snapshot, Values
from ibtui.measures.renyi import auto_width, entropy, gram, renyi_mi


def renyi_description(st) -> str:
    """The estimator's one-line definition and settings (run info, sidecar, `?` help, figure titles)."""
    width = f"σ = {st.sigma:g}" if st.sigma > 0 else f"σ = {st.gamma:g}·σ̂·√d·n^(−1/(4+d)) per seed"
    where = f"on {st.points} of the MI points" if st.points else "on all MI points"
    return (f"matrix-based Rényi, α = {st.alpha:g}: I = S(A)+S(B)−S(A∘B/tr), S = log2(Σλ^α)/(1−α) of Gaussian "
            f"Grams, {width}, labels by class indicator; {where}")


class RenyiProbe(Probe):
    """I_α(X;T) and I_α(T;Y) of every layer from normalised Gram matrices, all seeds at once.

    The inputs' Gram matrix and its entropy depend only on the measured points, which are fixed for the run,
    so they are computed at the first snapshot and kept.
    """

    detached = True  # reads the snapshot and the fixed inputs only

    def __init__(self, ctx: RunContext):
        self.settings = ctx.sc.measure.renyi
        self.x = ctx.data.x
        self.estimators = {"renyi": renyi_description(self.settings)}
        self.points = {"renyi": self.settings.points}
        self._inputs: tuple[torch.Tensor | None, torch.Tensor, torch.Tensor] | None = None  # (idx, A_X, S(A_X))

    def _x_gram(self, idx: torch.Tensor | None, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A_X [1 or S, n, n] and S_α(A_X) of the measured inputs (rows idx of the data set, None = all)."""
        cached = self._inputs
        if cached is not None and (cached[0] is None) == (idx is None) and (idx is None or torch.equal(cached[0], idx)):
            return cached[1], cached[2]
        flat = self.x.reshape(self.x.shape[0], -1)
        if idx is not None and bool((idx == idx[:1]).all()):
            idx = idx[:1]
        x = flat.unsqueeze(0) if idx is None else flat[idx]  # [1 or S, n, d_in]
        st = self.settings
        sigma = st.sigma if st.sigma > 0 else auto_width(x, st.gamma)
        a_x = gram(x, sigma)
        s_x = entropy(a_x, st.alpha)
        self._inputs = (None if idx is None else idx.clone(), a_x, s_x)
        return a_x, s_x

    def at_snapshot(self, snap: Snapshot) -> Values:
        st = self.settings
        n_all = snap.layers[0].shape[1]
        keep = subset_indices(n_all, st.points, snap.layers[0].device)
        idx = snap.point_idx
        if keep is not None:
            idx = (keep.unsqueeze(0) if idx is None else idx[:, keep])
        layers = snap.layers if keep is None else [h[:, keep] for h in snap.layers]
        labels = snap.labels if keep is None else snap.labels[..., keep]
        n = layers[0].shape[1]
        a_x, s_x = self._x_gram(idx, n)
        shared = shared_labels(labels)
        out: Values = {}
        for index, h in enumerate(layers, start=1):
            if shared is not None:
                mi = renyi_mi(h, shared, st.alpha, st.sigma, st.gamma, x_gram=a_x, x_entropy=s_x)
            else:  # each seed measures its own points: its own labels and, when they differ, its own inputs
                parts = [renyi_mi(h[i:i + 1], labels[i], st.alpha, st.sigma, st.gamma,
                                  x_gram=a_x[i:i + 1] if a_x.shape[0] > 1 else a_x,
                                  x_entropy=s_x[i:i + 1] if s_x.shape[0] > 1 else s_x)
                         for i in range(h.shape[0])]
                mi = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
            out[(str(index), Q.MI_XT, "renyi")] = mi["mi_xt"].float()
            out[(str(index), Q.MI_TY, "renyi")] = mi["mi_ty"].float()
        return out
