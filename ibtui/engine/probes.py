"""Probes: what the engine measures, one object per measure family, all driven the same way.

A probe can watch every training step (`after_step`, e.g. gradient moments) and returns, at each
snapshot, a dict {(layer, quantity, estimator): Tensor[S]} computed on the device. The engine knows
nothing about any particular measure; adding one means adding a probe.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from ibtui.data.sampling import fixed_subset
from ibtui import quantities as Q
from ibtui.engine import rng
from ibtui.engine.snapshot import Values, binning_description, binning_label, binning_values
from ibtui.measures.kde import attention_agrees, kde_mi, kde_mi_attention
from ibtui.measures.sp import sp_mutual_information

if TYPE_CHECKING:
    from ibtui.engine.trainer import Engine


@dataclass
class Snapshot:
    """What every probe sees at a snapshot (all tensors on the device, all seeds at once)."""

    epoch: int
    beta: float  # the network's noise level now
    layers: list[torch.Tensor]  # [S, n, d_l] noiseless representations on the MI points; the last is the output
    activations: list[str]  # per layer: "tanh", "relu", …, "softmax"
    labels: torch.Tensor  # [n] (or [S, n] when seeds measure different points)
    point_idx: torch.Tensor | None  # [S, n] indices of the MI points in the data set, None = all points
    extra: dict = field(default_factory=dict)  # values computed by one probe that another may read


class Probe:
    """Base probe: no step hook, no estimator, nothing measured."""

    estimators: dict[str, str] = {}  # estimator label → one line describing its settings
    notes: tuple[str, ...] = ()
    watches_steps = False
    graph_safe = False  # True if after_step is pure device work that may be captured in a CUDA graph

    def watches_epoch(self, engine: "Engine", epoch: int) -> bool:
        """Whether after_step must see the steps of this epoch (only asked when watches_steps)."""
        return self.watches_steps

    def after_step(self, engine: "Engine") -> None:  # called after backward, before the optimiser step
        pass

    def after_epoch(self, engine: "Engine") -> None:
        pass

    def at_snapshot(self, engine: "Engine", snap: Snapshot) -> Values:
        return {}


def _shared_labels(labels: torch.Tensor) -> torch.Tensor | None:
    """labels [n] → itself; [S, n] with identical rows → row 0; otherwise None (per-seed labels)."""
    if labels.dim() == 1:
        return labels
    return labels[0] if bool((labels == labels[:1]).all()) else None


def per_labels(fn, h: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """fn(h, labels [n]) → {name: Tensor[S]}, for all seeds in one call when they measure the same points,
    else one call per seed (a per-seed split gives each seed its own points and labels)."""
    shared = _shared_labels(labels)
    if shared is not None:
        return fn(h, shared)
    parts = [fn(h[i:i + 1], labels[i]) for i in range(h.shape[0])]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def subset_of(snap: "Snapshot", points: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The snapshot's layers and labels on a fixed random subset of `points` MI points (all when 0)."""
    keep = subset_indices(snap.layers[0].shape[1], points, snap.layers[0].device, snap.epoch)
    if keep is None:
        return snap.layers, snap.labels
    return [h[:, keep] for h in snap.layers], snap.labels[..., keep]


class BinningProbe(Probe):
    """Binned I(X;T), I(T;Y) of every layer (Shwartz-Ziv & Tishby 2017)."""

    def __init__(self, engine: "Engine"):
        settings = engine.sc.measure.binning
        self.settings = settings
        self.estimators = {binning_label(settings): binning_description(settings, engine.sc.model.activation)}

    def at_snapshot(self, engine, snap):
        return binning_values(snap.layers, snap.activations, snap.labels, self.settings, x_ids=engine.x_ids(snap))


class KdeProbe(Probe):
    """Kolchinsky–Tracey KDE upper and lower bounds of every layer (Saxe et al. 2018).

    All layers and seeds go through the fused attention kernel (`kde_mi_attention`) when a start-up check
    finds it accurate on the device; otherwise one pairwise-sum pass per layer (`kde_mi`).
    """

    def __init__(self, engine: "Engine"):
        self.settings = engine.sc.measure.kde
        where = f"on {self.settings.points} of the MI points" if self.settings.points else "on all MI points"
        desc = f"pairwise-distance bound, noise variance σ² = {self.settings.noise_variance:g}, {where}"
        self.estimators = {"kde_upper": "KDE upper (KL) " + desc, "kde_lower": "KDE lower (Bhattacharyya) " + desc}
        self.fused = attention_agrees(engine.device, self.settings.noise_variance)
        if not self.fused:
            self.notes = (f"kde: the fused attention kernel is not accurate on {engine.device} (start-up check); "
                          f"pairwise sums are used instead (slower).",)

    def _mi(self, layers: list[torch.Tensor], labels: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        var = self.settings.noise_variance
        if not self.fused:
            return [per_labels(lambda h, y: kde_mi(h, y, var, exact_distances=False), h, labels) for h in layers]
        shared = _shared_labels(labels)
        if shared is not None:
            return kde_mi_attention(layers, shared, var)
        per_seed = [kde_mi_attention([h[i:i + 1] for h in layers], labels[i], var) for i in range(labels.shape[0])]
        return [{k: torch.cat([seed[j][k] for seed in per_seed]) for k in per_seed[0][j]} for j in range(len(layers))]

    def at_snapshot(self, engine, snap):
        layers, labels = subset_of(snap, self.settings.points)
        out: Values = {}
        for index, mi in enumerate(self._mi(layers, labels), start=1):
            out[(str(index), Q.MI_XT, "kde_upper")] = mi["upper_xt"]
            out[(str(index), Q.MI_XT, "kde_lower")] = mi["lower_xt"]
            out[(str(index), Q.MI_TY, "kde_upper")] = mi["upper_ty"]
            out[(str(index), Q.MI_TY, "kde_lower")] = mi["lower_ty"]
        return out


class SpProbe(Probe):
    """Sample-propagation estimates for the hidden layers of a noisy network (Goldfeld et al. 2019).

    For each measured input, `samples` noisy passes through the earlier layers give the centres of
    its conditional mixture; SP then integrates the Gaussian-mixture entropies by Monte Carlo. With
    β = 0 the true I(X;T) of a deterministic network is not finite, so nothing is recorded.
    """

    def __init__(self, engine: "Engine"):
        self.settings = engine.sc.measure.sp
        st = self.settings
        where = f"averaged over {st.points} inputs" if st.points else "averaged over all MI inputs"
        self.estimators = {"sp": f"sample propagation with the network's noise β, {st.samples} noisy passes a "
                                 f"input, {st.mc} Monte Carlo draws an input, {where}"}
        if min(engine.sc.model.noise_levels) == 0:
            self.notes = ("sp: no value while the noise level β is 0 (I(X;T) of a deterministic network is not "
                          "finite)",)

    def at_snapshot(self, engine, snap):
        beta = snap.beta
        if beta <= 0:
            return {}
        st = self.settings
        n = snap.layers[0].shape[1]
        idx = snap.point_idx
        s = engine.seed_tensor.shape[0]
        if idx is None:
            idx = torch.arange(n, device=engine.seed_tensor.device).expand(s, n)
        labels = engine.data.y[idx]
        m = idx.shape[1]
        x = engine.data.x.reshape(engine.data.x.shape[0], -1)[idx]  # [S, m, d_in]
        x = x.repeat_interleave(st.samples, dim=1)  # [S, m·k, d_in], copies of x_i adjacent
        if engine.sc.model.kind != "mlp":  # convolutional models take images [S, m·k, C, H, W]
            x = x.reshape(*x.shape[:2], *engine.data.x.shape[1:])
        counter = (rng.STREAM_MEASURE, snap.epoch)

        def noise(layer: int, like: torch.Tensor) -> torch.Tensor:
            return rng.normal(engine.seed_tensor, counter + (layer,), tuple(like.shape[1:])).to(like.dtype)

        with torch.no_grad():
            _, hidden = engine.model(x, beta, noise)
        gen = torch.Generator(device=engine.seed_tensor.device).manual_seed(snap.epoch * 7919 + 17)
        # X is uniform over all m measured inputs (every centre enters the pooled mixture); the Monte
        # Carlo average runs over `points` of them, which only widens the standard error.
        sp = lambda c, y: sp_mutual_information(c, y, beta, st.mc, generator=gen, n_points=st.points or None)  # noqa: E731
        out: Values = {}
        for index, h in enumerate(hidden, start=1):
            mi = per_labels(sp, h.reshape(s, m, st.samples, -1), labels)
            out[(str(index), Q.MI_XT, "sp")] = mi["mi_xt"]
            out[(str(index), Q.MI_XT_SE, "sp")] = mi["mi_xt_se"]
            out[(str(index), Q.MI_TY, "sp")] = mi["mi_ty"]
            out[(str(index), Q.MI_TY_SE, "sp")] = mi["mi_ty_se"]
        return out


class ExactProbe(Probe):
    """Exact I(X;T_1) and I(T_1;Y) of a noisy first hidden layer of one unit (the saturation toy).

    Given X = x, T_1 = s(x) + Z with Z ~ N(0, β²): a single Gaussian. So h(T_1) is the entropy of a 1-D
    mixture of Gaussians at the noiseless images of the measured inputs, integrated numerically with
    scipy (ibtui.measures.mixture), and I(X;T_1) = h(T_1) − ½ log2(2πeβ²). One quadrature per seed.
    """

    def __init__(self, engine: "Engine"):
        self.estimators = {"exact": "numerical integration (scipy quad) of the noisy 1-unit first layer's "
                                    "Gaussian-mixture entropy; no estimate"}

    def at_snapshot(self, engine, snap):
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


def subset_indices(n: int, points: int, device: torch.device, epoch: int) -> torch.Tensor | None:
    """A fixed random subset of `points` of n measured points (the same at every snapshot), or None for all."""
    return fixed_subset(n, points, seed=12345, device=device)


PROBES = {"binning": BinningProbe, "kde": KdeProbe, "sp": SpProbe, "exact": ExactProbe}


def build_probes(engine: "Engine") -> list[Probe]:
    """The probes a scenario asks for, in a fixed order (estimators first, then the other measures)."""
    probes: list[Probe] = [PROBES[name](engine) for name in engine.sc.measure.estimators]
    if engine.sc.measure.dynamics.enabled:
        from ibtui.engine.dynamics_probe import DynamicsProbe

        probes.append(DynamicsProbe(engine))
    if engine.sc.measure.clustering.enabled:
        from ibtui.engine.clustering_probe import ClusteringProbe

        probes.append(ClusteringProbe(engine))
    return probes
