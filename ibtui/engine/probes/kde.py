"""Kolchinsky–Tracey KDE bounds on I(X;T), I(T;Y) of every layer (Saxe et al. 2018)."""
from __future__ import annotations

import torch

from ibtui import compiled
from ibtui import quantities as Q
from ibtui.compiled import NO_COMPILER
from ibtui.engine.context import RunContext
from ibtui.engine.probes.base import Probe, shared_labels, per_labels, subset_indices, subset_of
from ibtui.engine.snapshot import Snapshot, Values
from ibtui.errors import IbtuiError
from ibtui.measures import native
from ibtui.measures.kde import attention_agrees, kde_mi, kde_mi_attention, kde_mi_tiled
from ibtui.measures.kernel_tiles import TRUNCATION_NATS

# Layers up to this width may be summed in tiles over near pairs (`kde_mi_tiled`, exact to ~2e-6 nats); wider
# ones always go through the fused attention kernel (or pairwise sums where it is not accurate on the device): the
# tile boxes cost a PyTorch operation a coordinate.
TILED_MAX_WIDTH = 512
# The paths of the layers up to TILED_MAX_WIDTH wide (RunInfo.kde_path, kept by a checkpoint): the compiled tile
# kernel (tile_sums.c), PyTorch's tile sums, the fused attention kernel, pairwise sums (where attention is not
# accurate on the device). They compute the same bounds and round differently.
PATHS = ("compiled", "pytorch", "attention", "pairwise")
TILES = ("compiled", "pytorch")
# Seconds of timing for measure.kde.path = auto (warm-ups and at least one round of every path: about twice this).
CHOICE_BUDGET_S = 0.5
# auto times the paths on this many seeds' layers (a snapshot's cost grows with the seeds in every path alike).
TIMED_SEEDS = 1


class KdeProbe(Probe):
    """Kolchinsky–Tracey KDE upper and lower bounds of every layer (Saxe et al. 2018).

    Layers up to TILED_MAX_WIDTH wide go one path, `kde_path` (PATHS): measure.kde.path, or under auto the
    faster on this machine at the run's shapes of those it has (`ibtui.compiled.choose`: timed once per machine
    and shapes on synthetic layers, one seed's, and recorded beside the kernels; where the probe is built without
    a model, as by `ibtui.monitor`, at the first snapshot on its layers). Wider layers go through the fused
    attention kernel (`kde_mi_attention`) when a start-up check finds it accurate on the device, otherwise one
    pairwise-sum pass per layer (`kde_mi`).
    """

    detached = True

    def __init__(self, ctx: RunContext):
        self.n_seeds = ctx.n_seeds
        self.settings = ctx.sc.measure.kde
        self.device = ctx.device
        self.fused = attention_agrees(ctx.device, self.settings.noise_variance)
        self.choice: compiled.Choice | None = None  # auto: the timing that chose kde_path
        self.kde_path: str | None = None  # None until chosen (a monitor's auto: at the first snapshot)
        self._notes: list[str] = []
        widths = self._widths(ctx)
        if self.settings.path != "auto":
            self.kde_path = self._forced(self.settings.path)
        elif widths is not None:
            self._decide(widths, *self._timing_points(ctx))
        self._describe()

    # ------------------------------------------------------------------ which path
    @staticmethod
    def _widths(ctx: RunContext) -> list[int] | None:
        """The measured layers' widths (hidden layers, then the output), None where there is no model to ask."""
        if ctx.model is None:
            return None
        hidden = getattr(ctx.model, "layer_widths", None) or ctx.sc.model.hidden_widths
        return [*map(int, hidden), int(ctx.data.n_classes)]

    def _timing_points(self, ctx: RunContext) -> tuple[int, torch.Tensor]:
        """(points measured, their labels [n] as seed 0 has them): the shapes the timing uses."""
        y = ctx.data.y if ctx.mi_idx is None else ctx.data.y[ctx.mi_idx[0]]
        keep = subset_indices(y.shape[0], self.settings.points, y.device)
        y = y if keep is None else y[keep]
        return int(y.shape[0]), y.to(torch.int64)

    def _can_compile(self) -> bool:
        return (self.device.type == "cpu" and self.settings.precision != "float64"  # the kernel sums float32 only
                and native.tile_sums() is not None)

    def _forced(self, mode: str) -> str:
        """The path measure.kde.path = `mode` takes here (with a note where it cannot run as asked)."""
        if mode == "compiled":
            if self._can_compile():
                return "compiled"
            if self.device.type != "cpu":  # the rule before auto: attention on a GPU
                return "attention" if self.fused else "pairwise"
            if self.settings.precision != "float64":
                self._notes.append(f"kde: {NO_COMPILER}, so the tile sums run in PyTorch, 2–4× slower; install "
                                   "one, or measure fewer points (measure.kde.points).")
            return "pytorch"
        if mode == "attention":
            return "attention" if self.fused else "pairwise"
        return "pytorch"

    def _candidates(self) -> list[str]:
        """The paths auto may take here: on a CPU the tile sums (compiled where it can run, PyTorch's) and fused
        attention where accurate; on a GPU the rule before auto (attention where accurate, else pairwise sums),
        untimed: the tile sums were never measured there."""
        if self.device.type != "cpu":
            return ["attention" if self.fused else "pairwise"]
        return [*(["compiled"] if self._can_compile() else []), "pytorch", *(["attention"] if self.fused else [])]

    def _decide(self, widths: list[int], n: int, labels: torch.Tensor) -> None:
        """auto: the faster of the candidate paths for layers of `widths` (those up to TILED_MAX_WIDTH) on `n`
        points labelled `labels`, timed on TIMED_SEEDS seeds' synthetic layers (once per machine and shapes)."""
        narrow = [d for d in widths if d <= TILED_MAX_WIDTH]
        candidates = self._candidates()
        if self.device.type == "cpu" and not self._can_compile() and self.settings.precision != "float64":
            self._notes.append(f"kde: {NO_COMPILER}, so the compiled tile kernel is not among the paths timed.")
        if not narrow or len(candidates) == 1:
            self.kde_path = candidates[0]
            return
        var = self.settings.noise_variance
        g = torch.Generator().manual_seed(12345)  # its own stream: the run's numbers do not change
        dtype = torch.float64 if self.settings.precision == "float64" else torch.float32
        layers = [torch.tanh(torch.randn(TIMED_SEEDS, n, d, generator=g)) for d in narrow[:-1]]
        layers.append(torch.softmax(3.0 * torch.randn(TIMED_SEEDS, n, narrow[-1], generator=g), dim=-1))
        layers = [h.to(device=self.device, dtype=dtype) for h in layers]
        y = labels.to(self.device)
        calls = {"compiled": lambda: kde_mi_tiled(layers, y, var, compiled=True),
                 "pytorch": lambda: kde_mi_tiled(layers, y, var, compiled=False),
                 "attention": lambda: kde_mi_attention(layers, y, var)}
        source = (compiled.source_key("ibtui.measures", native.SOURCE, native.FLAG_SETS)
                  if "compiled" in candidates else "")
        parts = {"source": source, "widths": narrow, "points": n, "classes": int(labels.max()) + 1,
                 "seeds": self.n_seeds, "timed_seeds": TIMED_SEEDS, "noise_variance": var,
                 "precision": self.settings.precision, "threads": torch.get_num_threads(),
                 "torch": torch.__version__, "candidates": candidates}
        self.choice = compiled.choose("kde_path", parts, {c: calls[c] for c in candidates}, CHOICE_BUDGET_S)
        self.kde_path = self.choice.path

    def use_path(self, name: str | None) -> None:
        """Measure with path `name` (PATHS) from now on: a resumed run keeps the path it began with, whatever the
        timing chooses on this machine today (they round differently). None (a checkpoint from before
        measure.kde.path): the rule then, measure.kde.path = compiled."""
        self.choice = None
        self._notes = []
        if name is None:
            self.kde_path = self._forced("compiled")
        elif name == "compiled" and not self._can_compile():
            raise IbtuiError("this run's KDE bounds were summed by the compiled tile kernel, which needs a CPU, "
                             "float32 sums and a working C compiler (cc, gcc or clang, and IBTUI_NATIVE unset); "
                             "install one to resume it exactly.")
        elif name == "attention" and not self.fused:
            self.kde_path = "pairwise"
            self._notes.append(f"kde: this run began with the fused attention kernel, which is not accurate on "
                               f"{self.device}; pairwise sums are used instead (they round differently).")
        else:
            self.kde_path = name
        self._describe(kept=True)

    # ------------------------------------------------------------------ what the run says
    def _describe(self, kept: bool = False) -> None:
        s = self.settings
        where = f"on {s.points} of the MI points" if s.points else "on all MI points"
        path = self.kde_path
        if path in TILES:
            code = "compiled kernel" if path == "compiled" else "PyTorch"
            how = (f"over near pairs in tiles up to {TILED_MAX_WIDTH} units wide ({code}; skipped pairs ≤ "
                   f"{TRUNCATION_NATS:g} nats a log-sum)")
        elif path == "attention":
            how = "by fused attention"
        elif path == "pairwise":
            how = "by pairwise sums"
        else:
            how = "by a path timed at the first snapshot (measure.kde.path = auto)"
        desc = (f"pairwise-distance bound, noise variance σ² = {s.noise_variance:g}, {where}, "
                f"{s.precision} sums {how}")
        self.estimators = {"kde_upper": "KDE upper (KL) " + desc, "kde_lower": "KDE lower (Bhattacharyya) " + desc}
        notes = []
        if not self.fused:
            notes.append(f"kde: the fused attention kernel is not accurate on {self.device} (start-up check); "
                         f"pairwise sums are used instead (slower).")
        notes.extend(self._notes)
        if path is not None:
            names = {"compiled": "the compiled tile kernel (tile_sums.c)", "pytorch": "PyTorch's tile sums",
                     "attention": "the fused attention kernel", "pairwise": "pairwise sums"}
            if kept:
                why = "the path this run began with (kept on resume: the paths round differently)"
            elif self.choice is not None:
                why = (f"measure.kde.path = auto, the faster at this run's shapes, one seed's layers: "
                       f"{self.choice.describe()}")
            elif s.path == "auto":
                why = "measure.kde.path = auto, the only path here"
            else:
                why = f"measure.kde.path = {s.path}"
            notes.append(f"kde: layers up to {TILED_MAX_WIDTH} units wide summed by {names[path]} ({why}); the "
                         f"paths round differently")
        self.notes = tuple(notes)

    # ------------------------------------------------------------------ measuring
    def _mi(self, layers: list[torch.Tensor], labels: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        if self.kde_path is None:  # auto without a model at build time (a monitor): timed on these layers
            shared = shared_labels(labels)
            y = shared if shared is not None else labels[0]
            self._decide([h.shape[-1] for h in layers], int(layers[0].shape[1]), y.to(torch.int64))
            self._describe()
        if self.settings.precision == "float64":  # the same kernels, float64 sums (ibtui.measures.kde)
            layers = [h.double() for h in layers]
        narrow = [h.shape[-1] <= TILED_MAX_WIDTH for h in layers]
        if self.kde_path in TILES:
            compiled_tiles = self.kde_path == "compiled"
            tiles = [h for h, t in zip(layers, narrow) if t]
            tiled = iter(self._per_seed_labels(
                lambda hs, y, var: kde_mi_tiled(hs, y, var, compiled=compiled_tiles), tiles, labels) if tiles else [])
        else:
            narrow = [False] * len(layers)
            tiled = iter([])
        wide = iter(self._wide([h for h, t in zip(layers, narrow) if not t], labels))
        return [next(tiled) if t else next(wide) for t in narrow]

    def _per_seed_labels(self, fn, layers: list[torch.Tensor], labels: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """fn(layers, labels [N], σ²) with one label vector for all seeds, or seed by seed."""
        var = self.settings.noise_variance
        shared = shared_labels(labels)
        if shared is not None:
            return fn(layers, shared, var)
        per_seed = [fn([h[i:i + 1] for h in layers], labels[i], var) for i in range(labels.shape[0])]
        return [{k: torch.cat([seed[j][k] for seed in per_seed]) for k in per_seed[0][j]} for j in range(len(layers))]

    def _wide(self, layers: list[torch.Tensor], labels: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        if not layers:
            return []
        var = self.settings.noise_variance
        if not self.fused or self.kde_path == "pairwise":
            return [per_labels(lambda h, y: kde_mi(h, y, var, exact_distances=False), h, labels) for h in layers]
        return self._per_seed_labels(kde_mi_attention, layers, labels)

    def at_snapshot(self, snap: Snapshot) -> Values:
        layers, labels = subset_of(snap, self.settings.points)
        out: Values = {}
        for index, mi in enumerate(self._mi(layers, labels), start=1):
            out[(str(index), Q.MI_XT, "kde_upper")] = mi["upper_xt"]
            out[(str(index), Q.MI_XT, "kde_lower")] = mi["lower_xt"]
            out[(str(index), Q.MI_TY, "kde_upper")] = mi["upper_ty"]
            out[(str(index), Q.MI_TY, "kde_lower")] = mi["lower_ty"]
        return out
