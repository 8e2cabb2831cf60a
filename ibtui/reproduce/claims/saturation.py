"""Claim saturation: a single noisy tanh neuron, I(X;T) 2 → 1 bit as tanh saturates; the trained toy."""
from __future__ import annotations

import math

import numpy as np

from ibtui.reproduce.common import Result, claim, final, last_epoch, powers, seeds_epochs, _plt, save
from ibtui.reproduce.runner import run_spec
from ibtui.reproduce.stats import FEW, mean_ci, outcome, verdict3

run_spec("saturation_sweep", "saturation_sweep", {}, {"run.seeds": 8}, {}, medium_cost=2)
run_spec("saturation_toy", "saturation_toy",
         {"run.seeds": 5, "run.epochs": 20000, "measure.snapshots": 50},
         {"run.seeds": 10, "run.epochs": 20000, "measure.snapshots": 50},
         {"run.seeds": 10}, medium_cost=2)


# Exact I(X;T) of the b = 0 single neuron at β = 0.01 (Goldfeld et al. 2019, single-neuron example), from an
# independent quadrature of the same integral made before ibtui's estimator existed: the reference the sweep's own
# "exact" estimator is compared with. w → bits.
SAT_REF = {0.01: 1.219, 0.1: 2.000, 0.5: 2.000, 1.0: 2.000, 2.0: 1.865, 5.0: 1.000, 50.0: 1.000}
H_QUARTER = -(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75))


@claim("saturation", "A single noisy tanh neuron: I(X;T) = 2 bits while the four inputs are far apart, falling to "
       "1 bit as tanh saturates (sweep of w); trained on {−3,−1,1} vs {3} it falls to H(¼) = 0.811 bits",
       "Goldfeld et al. 2019 (ICML), §4 (the trained toy's labelling is recalled, unverified)",
       ["saturation_sweep", "saturation_toy"])
def c_saturation(runs):
    sw, toy = runs
    rows = ["| w | exact (ibtui) | reference (independent quadrature) | SP ± SE (mean of seeds) | binned (30 bins) |",
            "|---|---|---|---|---|"]
    ws, ex, spv, sev = [], [], [], []
    worst_ref, worst_sp = 0.0, 0.0
    for s in sw.sweeps():
        w = float(s.split("=")[1])
        x = final(sw, "I(X;T)", "exact", "1", s)
        sp = final(sw, "I(X;T)", "sp", "1", s)
        se = final(sw, "I(X;T)_se", "sp", "1", s)
        b = final(sw, "I(X;T)", "bin30", "1", s)
        ref = SAT_REF.get(w)
        if ref is not None and np.isfinite(x):
            worst_ref = max(worst_ref, abs(x - ref))
        if np.isfinite(se) and np.isfinite(sp):   # in SE, with 0.001 bit of float32 slack (SE → 0 at 2 bits)
            worst_sp = max(worst_sp, max(abs(sp - x) - 1e-3, 0.0) / max(se, 1e-12))
        ws.append(w); ex.append(x); spv.append(sp); sev.append(se)
        rows.append(f"| {w:g} | {x:.3f} | {'–' if ref is None else f'{ref:.3f}'} | {sp:.3f} ± {se:.3f} | {b:.3f} |")
    e, tx = toy.series("I(X;T)", "exact", "1")
    _, tsp = toy.series("I(X;T)", "sp", "1")
    _, tb = toy.series("I(X;T)", "bin30", "1")
    _, ty = toy.series("I(T;Y)", "exact", "1")
    fin = [final(toy, "I(X;T)", "exact", "1", seed=s) for s in toy.seeds()]
    per_seed = {s: toy.series("I(X;T)", "exact", "1", seed=s) for s in toy.seeds()}
    peaks = {s: float(np.nanmax(v)) for s, (_, v) in per_seed.items()}
    low_start = {s: (float(v[0]), float(e_[np.argmax(v >= 1.9)]) if (v >= 1.9).any() else None)
                 for s, (e_, v) in per_seed.items() if v[0] < 1.9}
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3.8))
    a1.plot(ws, ex, "k-o", ms=3, label="exact (quadrature)")
    a1.errorbar(ws, spv, yerr=3 * np.array(sev), fmt="s", ms=3, color="C1", label="SP ± 3 SE")
    rw = sorted(SAT_REF)
    a1.plot(rw, [SAT_REF[w] for w in rw], "x", color="C3", label="reference (independent quadrature)")
    a1.set_xscale("log"); a1.set_xlabel("weight w (b = 0, β = 0.01)"); a1.set_ylabel("I(X;T) [bits]")
    a1.axhline(2, ls=":", c="0.6"); a1.axhline(1, ls=":", c="0.6"); a1.legend(); a1.set_title("sweep of w")
    ok = e > 0
    a2.plot(e[ok], tx[ok], "k-", label="I(X;T) exact")
    a2.plot(e[ok], tsp[ok], "C1--", label="I(X;T) SP")
    a2.plot(e[ok], tb[ok], "C2:", label="I(X;T) 30 bins")
    a2.plot(e[ok], ty[ok], "C0-", lw=0.8, label="I(T;Y) exact")
    a2.axhline(H_QUARTER, ls=":", c="r"); a2.text(e[ok][0], H_QUARTER, "H(1/4) = 0.811", color="r", va="bottom")
    a2.set_xscale("log"); a2.set_xlabel("epoch"); a2.set_ylabel("bits"); a2.legend(fontsize=6)
    a2.set_title("trained toy {−3,−1,1} vs {3} (mean of seeds)")
    fig.tight_layout()
    figp = save(fig, "saturation")
    fin_ci = mean_ci(fin)

    sweep_ok = worst_ref <= 0.01 and worst_sp <= 3
    near = (fin_ci.at_least(H_QUARTER - 0.02), fin_ci.at_most(H_QUARTER + 0.02))   # inside ± 0.02 at both ends
    toy_ok = (False if min(peaks.values()) < 1.9 or False in near else FEW if FEW in near
              else True if near == (True, True) else None)
    verdict = verdict3([sweep_ok, toy_ok])
    measured = (f"Sweep: {len(ws)} weights, {sw.sc['run']['seeds']} seeds (MC draws); largest |exact − reference| "
                f"= {worst_ref:.3f} bits, largest (|SP − exact| − 0.001 bit) = {worst_sp:.1f} SE. Trained toy: {seeds_epochs(toy)}, "
                f"exact I(X;T) {tx[0]:.3f} bits at epoch 0 → {fin_ci.fmt(4)} (mean over seeds [95 % CI]) at epoch {last_epoch(toy)} "
                f"(H(1/4) = {H_QUARTER:.4f}); SP ends at {tsp[-1]:.3f}, binning at {tb[-1]:.3f}; I(T;Y) ends at "
                f"{ty[-1]:.3f}. Every seed's peak: {min(peaks.values()):.3f}–{max(peaks.values()):.3f} bits"
                + "".join(f"; seed {s} starts at {v0:.3f} bits (its initial weight leaves the four inputs within the "
                          f"noise) and reaches ≥ 1.9 bits "
                          + (f"by epoch {ep:.0f}" if ep is not None else "never") for s, (v0, ep) in low_start.items())
                + ".\n\n" + "\n".join(rows))
    why = (f"Rule: reproduced if the sweep's exact values match the quadrature reference within 0.01 bit and SP lies "
           f"within 3 SE (+ 0.001 bit of float32 slack) of exact, and in the trained toy every seed reaches ≥ 1.9 bits "
           f"(the four inputs far apart) and the mean ends within 0.02 bit of H(1/4), the whole 95 % interval of "
           f"its mean over seeds (Student's t) inside that band; it fails only where the whole interval lies outside. (Until the medium run the rule read the mean at epoch 0; a seed "
           f"whose initial weight is small starts lower and separates the inputs in its first epochs, so the rule "
           f"reads each seed's peak, what the claim's \"while the inputs are far apart\" is about.) "
           f"Sweep {'passes' if sweep_ok else 'fails'}; toy: {outcome(toy_ok)}.")
    key = f"sweep 2→1 bit (max dev {worst_ref:.3f}); toy ends {fin_ci.fmt(3)} bits"
    return Result(measured, verdict, why, [figp], key, powers(("toy final", fin_ci, 0.02)))
