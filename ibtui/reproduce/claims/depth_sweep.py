"""Claim depth_sweep: convergence time falls with depth K as K^(−1/α), α ≤ 0.5."""
from __future__ import annotations

import math

import numpy as np

from ibtui.reproduce.common import Result, _plt, claim, final, save, seeds_epochs
from ibtui.reproduce.runner import Run, run_spec
from ibtui.reproduce.stats import Est, combined_verdict, mean_sd, ms, slope_ci

run_spec("szt_depth_sweep", "szt_depth_sweep",
         {"run.seeds": 5, "run.epochs": 3000, "measure.snapshots": 80, "measure.estimators": []},
         {"run.seeds": 10, "run.epochs": 10000, "measure.snapshots": 80, "measure.estimators": []},
         {"run.seeds": 50, "run.epochs": 8000, "measure.estimators": []}, medium_cost=2 * 10 / 3)
run_spec("mnist_depth_sweep", "mnist_depth_sweep",
         {"run.seeds": 2, "run.epochs": 40, "measure.snapshots": 40},
         {"run.seeds": 4, "run.epochs": 40, "measure.snapshots": 40, "data.mi_subset": 1000},
         {"run.seeds": 10, "run.epochs": 200}, data="mnist-5k", medium_data="mnist", full_data="mnist",
         medium_cost=2 * 12, gpu_note="full MNIST, 10 seeds, 200 epochs per depth")


def conv_epochs(r: Run, sweep: str, thr: float) -> list[float]:
    out = []
    for s in r.seeds(sweep):
        e, v = r.series("loss_train", "", "", seed=s, sweep=sweep)
        hit = np.nonzero(v <= thr)[0]
        out.append(float(e[hit[0]]) if len(hit) else math.nan)
    return out


def fastest(ks, taus) -> str:
    """Which depths converge soonest, and how τ moves with K (ties named: equal epochs at adjacent depths)."""
    best = [f"{k:.0f}" for k, t in zip(ks, taus) if t == min(taus)]
    steps = np.diff(taus)
    how = ("does not fall monotonically" if (steps > 0).any() else "falls at every step" if (steps < 0).all()
           else "never rises, equal at some adjacent depths")
    return f"the fastest depth{'s are' if len(best) > 1 else ' is'} K = {', '.join(best)} (τ {how})"


DEPTH_THRESHOLD = {"szt_depth_sweep": 0.2, "mnist_depth_sweep": 0.2}   # train loss (nats) every depth reaches


@claim("depth_sweep", "Convergence time falls with the number of hidden layers K as K^(−1/α), 0 < α ≤ 0.5 "
       "(exponent ≤ −2)", "Shwartz-Ziv, Painsky & Tishby 2019, Fig. 3 and §5 (MNIST and the SZT data)",
       ["mnist_depth_sweep", "szt_depth_sweep"],
       note="Converged runs: convergence = the first snapshot epoch at which a seed's train loss is ≤ 0.2 nats, a "
            "threshold every depth reaches within the run (checked below). Same batch size at every depth, so "
            "epochs are proportional to iterations. K = 1 keeps only the first hidden layer.")
def c_depth(runs):
    parts, keys, verdicts = [], [], []
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for tag, r in zip(("MNIST", "SZT"), runs):
        thr = DEPTH_THRESHOLD[r.path.stem]
        ks, taus, rows = [], [], ["| K | convergence epoch (seeds) | final train loss |", "|---|---|---|"]
        all_reach = True
        for s in r.sweeps():
            k = float(s.split("=")[1])
            ce = conv_epochs(r, s, thr)
            m, sd, n = mean_sd(ce)
            all_reach &= n == len(ce)
            fl = final(r, "loss_train", "", "", s)
            rows.append(f"| {k:.0f} | {ms(ce)} | {fl:.3f} |")
            if n:
                ks.append(k); taus.append(m)
        p, logc = (np.polyfit(np.log(ks), np.log(taus), 1) if len(ks) >= 2 else (math.nan, math.nan))
        alpha = -1 / p if np.isfinite(p) and p < 0 else math.nan
        p_ci = slope_ci(np.log(ks), np.log(taus)) if len(ks) >= 2 else Est(math.nan, math.nan, math.nan, len(ks))
        steep, falling = p_ci.at_most(-2), p_ci.at_most(-1e-12)
        v = ("reproduced" if steep and all_reach else "within noise" if steep is None and all_reach and p <= -2
             else "partially" if falling else "within noise" if falling is None else "not reproduced")
        verdicts.append(v)
        l, = ax.plot(ks, taus, "o-", label=f"{tag}: τ ∝ K^{p:.2f}" + (f" (α = {alpha:.2f})" if np.isfinite(alpha) else ""))
        if taus:
            kk = np.linspace(1, 5, 20)
            ax.plot(kk, taus[0] * kk ** -2.0, ":", color=l.get_color(), lw=0.8, label=f"{tag}: K^-2 from K = 1 (paper's bound)")
        parts.append(f"**{tag}** ({seeds_epochs(r)} per depth, threshold {thr} nats; every seed of every depth "
                     f"reaches it: {'yes' if all_reach else 'no'}): τ = {math.exp(logc):.3g} × K^p, p = {p_ci.fmt()} (95 % "
                     f"interval from resampling the depths)"
                     + (f", α = −1/p = {alpha:.2f}" if np.isfinite(alpha) else "")
                     + (f"; {fastest(ks, taus)}" if taus else "") + f" → {v}.\n\n" + "\n".join(rows))
        keys.append(f"{tag} p = {p_ci.fmt()}")
    k = np.array([1, 5.0])
    ax.set_xscale("log"); ax.set_yscale("log"); ax.set_xlabel("hidden layers K"); ax.set_ylabel("convergence epoch")
    ax.set_xticks([1, 2, 3, 4, 5]); ax.set_xticklabels(["1", "2", "3", "4", "5"])
    ax.legend(); ax.set_title("convergence time (train loss ≤ 0.2 nats) against depth; paper: slope ≤ −2")
    fig.tight_layout()
    figp = save(fig, "depth_sweep")
    verdict = combined_verdict(verdicts)
    why = ("Rule per data set: reproduced if every run converges and the power-law exponent p of τ = c·K^p is ≤ −2 "
           "(α ≤ 0.5) at the high end of its 95 % interval (depths resampled); partially if τ falls with K (p < 0 "
           "at the high end) but more slowly; within noise where the interval straddles the threshold; not reproduced if it does not fall. "
           f"MNIST: {verdicts[0]}; SZT: {verdicts[1]}.")
    return Result("\n\n".join(parts), verdict, why, [figp], "; ".join(keys))
