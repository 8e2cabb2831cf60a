"""The end-of-sweep summary: per swept value, what the paper's sweeps measure, and the trend it fits.

Shwartz-Ziv, Painsky & Tishby (2019, Sec. 5 and Figs. 1b and 3) report two sweeps:

- batch size (Fig. 1b): for each batch size, the iteration where compression starts against the iteration
  of the SNR (drift→diffusion) transition: "a clear linear trend".  Printed: a least-squares line
  compression-start = a + b·transition, in iterations (the paper's axes) and in epochs, with Pearson's r;
- depth (Fig. 3): the converged iteration against the number of hidden layers K, fitted as a power law,
  τ ∝ K^p.  Their argument gives p = −1/α with the diffusion exponent 0 < α ≤ 0.5, i.e. p ≤ −2
  ("a super-linear boost … by a factor K^{1/α}").  Printed: p and α = −1/p.

Definitions used here (the paper gives none precise enough to copy):

- transition epoch: the `transition_epoch` the dynamics probe declared for a layer and seed (its last
  value); mean ± sd over the seeds where one was declared (the count is shown);
- convergence epoch of a seed: the first snapshot epoch from which its train accuracy stays at or above
  `threshold` (99 %) of its final value at every later snapshot; mean ± sd over seeds;
- compression start: the snapshot epoch where the mean over seeds of I(X;T) of the last hidden layer
  peaks (binning preferred, else the first MI estimator seen); none if the peak is the last snapshot;
- the batch fit uses the transition of the last hidden layer, the layer whose I(X;T) defines the start.

The report is a sink (start / emit / close) that keeps only those series, so a long sweep costs little.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from ibtui import quantities as Q
from ibtui.records import Record, RunInfo, Sink

__all__ = ["SweepReport", "linear_fit", "power_law_fit", "convergence_epoch", "peak_epoch"]

TRANSITION = Q.TRANSITION_EPOCH
THRESHOLD = 0.99


def linear_fit(x: list[float], y: list[float]) -> tuple[float, float, float]:
    """Least squares y = a + b·x: (b, a, Pearson r); NaN where fewer than 2 distinct x."""
    n = len(x)
    if n < 2:
        return math.nan, math.nan, math.nan
    mx, my = sum(x) / n, sum(y) / n
    sxx = sum((v - mx) ** 2 for v in x)
    syy = sum((v - my) ** 2 for v in y)
    sxy = sum((u - mx) * (v - my) for u, v in zip(x, y))
    if sxx <= 0:
        return math.nan, math.nan, math.nan
    b = sxy / sxx
    r = sxy / math.sqrt(sxx * syy) if syy > 0 else math.nan
    return b, my - b * mx, r


def power_law_fit(k: list[float], tau: list[float]) -> tuple[float, float]:
    """Least squares of log τ = log c + p·log K: (p, c).  Points with K ≤ 0 or τ ≤ 0 are dropped."""
    pts = [(math.log(a), math.log(b)) for a, b in zip(k, tau) if a > 0 and b > 0]
    p, log_c, _ = linear_fit([a for a, _ in pts], [b for _, b in pts])
    return p, math.exp(log_c) if math.isfinite(log_c) else math.nan


def convergence_epoch(series: dict[int, float], threshold: float = THRESHOLD) -> float:
    """First epoch from which the value stays ≥ threshold × its final value (NaN for an empty series)."""
    epochs = sorted(e for e, v in series.items() if math.isfinite(v))
    if not epochs:
        return math.nan
    level = threshold * series[epochs[-1]]
    start = epochs[0]
    for e, nxt in zip(epochs, epochs[1:]):
        if series[e] < level:
            start = nxt
    return float(start)


def peak_epoch(series: dict[int, float]) -> float:
    """Epoch of the maximum (the first, on ties); NaN if the maximum is the last snapshot (no fall yet)."""
    epochs = sorted(e for e, v in series.items() if math.isfinite(v))
    if not epochs:
        return math.nan
    best = max(epochs, key=lambda e: (series[e], -e))
    return math.nan if best == epochs[-1] else float(best)


def _mean_sd(values: list[float]) -> tuple[float, float, int]:
    v = [x for x in values if math.isfinite(x)]
    if not v:
        return math.nan, math.nan, 0
    m = sum(v) / len(v)
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else math.nan
    return m, sd, len(v)


def _fmt(m: float, sd: float = math.nan) -> str:
    if not math.isfinite(m):
        return "–"
    return f"{m:.4g}" if not math.isfinite(sd) else f"{m:.4g} ± {sd:.2g}"


@dataclass
class _Point:
    """What one sweep value contributes."""

    label: str
    value: float
    layers: tuple[str, ...] = ()
    transitions: dict = field(default_factory=dict)  # (seed, layer) → last transition_epoch
    acc: dict = field(default_factory=lambda: defaultdict(dict))  # seed → {epoch: acc_train}
    mi: dict = field(default_factory=lambda: defaultdict(lambda: defaultdict(dict)))  # est → layer → {epoch: I}
    steps_per_epoch: float = math.nan
    seeds: set = field(default_factory=set)

    @property
    def last_hidden(self) -> str:
        layers = self.layers or tuple(sorted({layer for _, layer in self.transitions}, key=int))
        return layers[-2] if len(layers) >= 2 else ""

    @property
    def n_hidden(self) -> int:
        return max(len(self.layers) - 1, 0)

    def transition(self, layer: str) -> tuple[float, float, int]:
        return _mean_sd([v for (s, lay), v in self.transitions.items() if lay == layer])

    def convergence(self, threshold: float) -> tuple[float, float, int]:
        return _mean_sd([convergence_epoch(series, threshold) for series in self.acc.values()])

    def compression(self) -> tuple[float, str]:
        """(compression-start epoch, estimator used) from the last hidden layer's mean I(X;T)."""
        layer = self.last_hidden
        ests = sorted(self.mi, key=lambda e: (not e.startswith("bin"), e))
        for est in ests:
            if layer in self.mi[est]:
                return peak_epoch(self.mi[est][layer]), est
        return math.nan, ""


class SweepReport(Sink):
    """Sink collecting transition, convergence and compression per sweep value; `text()` prints the trend."""

    def __init__(self, sc=None, setting: str | None = None, threshold: float = THRESHOLD):
        self.setting = setting if setting is not None else (sc.sweep.setting if sc is not None else "")
        self.threshold = threshold
        self.points: dict[str, _Point] = {}
        self.finished: bool | None = None

    # ------------------------------------------------------------------ sink
    def _point(self, label: str) -> _Point:
        if label not in self.points:
            try:
                value = float(label.split("=", 1)[1]) if "=" in label else math.nan
            except ValueError:
                value = math.nan
            self.points[label] = _Point(label, value)
        return self.points[label]

    def start(self, info: RunInfo) -> None:
        self._point(info.sweep).layers = tuple(info.layers)

    def emit(self, records: list[Record]) -> None:
        for r in records:
            q = r.quantity
            if q == TRANSITION:
                if r.seed != "mean":
                    self._point(r.sweep).transitions[(r.seed, r.layer)] = r.value
            elif q == Q.ACC_TRAIN:
                if r.seed != "mean":
                    p = self._point(r.sweep)
                    p.acc[r.seed][r.epoch] = r.value
                    p.seeds.add(r.seed)
                    if r.epoch > 0:
                        p.steps_per_epoch = r.step / r.epoch
            elif q == Q.MI_XT and r.seed == "mean":
                self._point(r.sweep).mi[r.estimator][r.layer][r.epoch] = r.value

    def replay(self, records: list[Record]) -> None:
        self.emit(records)  # a resumed sweep's fit covers the points and rows before the checkpoint too

    def close(self, finished: bool) -> None:
        self.finished = finished

    # ------------------------------------------------------------------ results
    def batch_fit(self) -> dict:
        """Compression start against the last hidden layer's transition, across sweep values."""
        xs, ys, xi, yi = [], [], [], []
        for p in self.points.values():
            t, _, _ = p.transition(p.last_hidden)
            c, _ = p.compression()
            if math.isfinite(t) and math.isfinite(c):
                xs.append(t)
                ys.append(c)
                xi.append(t * p.steps_per_epoch)
                yi.append(c * p.steps_per_epoch)
        b, a, r = linear_fit(xi, yi)
        be, ae, re = linear_fit(xs, ys)
        return {"n": len(xs), "slope": b, "intercept": a, "r": r, "slope_epochs": be, "intercept_epochs": ae,
                "r_epochs": re, "x_iterations": xi, "y_iterations": yi}

    def depth_fit(self) -> dict:
        """Convergence epoch against the number of hidden layers K: τ = c·K^p."""
        ks, taus = [], []
        for p in self.points.values():
            tau, _, _ = p.convergence(self.threshold)
            if p.n_hidden > 0 and math.isfinite(tau) and tau > 0:
                ks.append(float(p.n_hidden))
                taus.append(tau)
        exponent, c = power_law_fit(ks, taus)
        alpha = -1.0 / exponent if math.isfinite(exponent) and exponent < 0 else math.nan
        return {"n": len(ks), "exponent": exponent, "prefactor": c, "alpha": alpha, "K": ks, "tau": taus}

    def text(self) -> str:
        if not self.points:
            return "sweep report: no records."
        lines = [f"Sweep of {self.setting or '(none)'}: mean ± sd over seeds "
                 f"(transition epochs: seeds with a declared transition in brackets)."]
        max_layers = max((len(p.layers) for p in self.points.values()), default=0)
        head = ["value", "convergence", "compression"] + [f"T{j}" for j in range(1, max_layers + 1)]
        rows = [head]
        for p in self.points.values():
            conv_m, conv_sd, _ = p.convergence(self.threshold)
            comp, _ = p.compression()
            row = [p.label.split("=", 1)[-1] if p.label else "–", _fmt(conv_m, conv_sd), _fmt(comp)]
            for layer in p.layers:
                m, sd, n = p.transition(layer)
                row.append(f"{_fmt(m, sd)} ({n}/{len(p.seeds) or '?'})")
            rows.append(row + ["–"] * (len(head) - len(row)))
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
        ests = sorted({est for p in self.points.values() for est in [p.compression()[1]] if est})
        lines.append(f"convergence = first snapshot epoch from which a seed's train accuracy stays ≥ "
                     f"{100 * self.threshold:g} % of its final value; compression = epoch of the peak of the mean "
                     f"I(X;T) of the last hidden layer ({', '.join(ests) or 'no MI estimator'}; – = no peak before "
                     f"the last snapshot); Tj = drift→diffusion transition epoch of layer j.")
        if self.setting.endswith("batch_size"):
            f = self.batch_fit()
            lines.append(f"Batch-size trend (paper, Fig. 1b: compression start vs SNR transition, 'a clear linear "
                         f"trend'): last hidden layer, {f['n']} sweep values: compression start = "
                         f"{f['intercept']:.4g} + {f['slope']:.4g} × transition (iterations), r = {f['r']:.3f}; in "
                         f"epochs: {f['intercept_epochs']:.4g} + {f['slope_epochs']:.4g} × transition, "
                         f"r = {f['r_epochs']:.3f}.")
        elif self.setting.endswith("depth"):
            f = self.depth_fit()
            lines.append(f"Depth trend (paper, Fig. 3: convergence time ∝ K^(−1/α) with α ≤ 0.5, i.e. exponent "
                         f"≤ −2): {f['n']} depths, convergence epoch = {f['prefactor']:.4g} × "
                         f"K^{f['exponent']:.3f}"
                         + (f" (α = {f['alpha']:.3g})." if math.isfinite(f['alpha']) else
                            " (does not fall with depth: no α)."))
        if self.finished is False:
            lines.append("(the sweep was stopped before its end: the last value is partial)")
        return "\n".join(lines)
