"""Claim orthonormal: orthonormal regularisation reduces clustering and with it compression."""
from __future__ import annotations

import math

import numpy as np

from ibtui.reproduce.common import COMPRESS, Result, _plt, claim, final, hidden, last_finite, powers, save, \
    seeds_epochs
from ibtui.reproduce.stats import f2, falls, g3, mean_ci, verdict3



@claim("orthonormal", "Orthonormal regularisation of a noisy tanh net reduces clustering and with it the compression "
       "of I(X;T)", "Goldfeld et al. 2019 (ICML), §5 (λ and the figure's details recalled)",
       ["szt_orthonormal"], figs=[(0, "clustering", "=0.1")], note="λ = 0.1 (ibtui's choice; the paper's value was not found), β = 0.01, SP over 64 "
       "inputs; same runs as the previous row.")
def c_orthonormal(runs):
    (r,) = runs
    sws = r.sweeps()
    L = hidden(r)
    rows = ["| layer | λ | SP: peak → final (fall) | H_bin 10β at end | close pairs (< β) at end |",
            "|---|---|---|---|---|"]
    cmp = {}
    for lay in L[2:]:
        for s in sws:
            lam = s.split("=")[1]
            p = falls(*r.series("I(X;T)", "sp", lay, sweep=s))
            _, hb = r.series("H_bin", "", lay, sweep=s)
            cp = final(r, "close_pairs", "", lay, s)
            cmp[(lay, lam)] = (p["drop"], float(hb[np.isfinite(hb)][-1]) if np.isfinite(hb).any() else math.nan, cp)
            rows.append(f"| T{lay} | {lam} | {f2(p['peak'])} → {f2(p['final'])} ({f2(p['drop'])}) | "
                        f"{f2(cmp[(lay, lam)][1])} | {g3(cp)} |")
    lams = [s.split("=")[1] for s in sws]
    l0, l1 = lams[0], lams[-1]
    s0, s1 = sws[0], sws[-1]

    seeds = [x for x in r.seeds(s0) if x in set(r.seeds(s1))]   # both arms start from the same network per seed

    def paired(q, est, lay, fn):   # fn(with the penalty's series) − fn(without), per seed, mean [t-interval]
        return mean_ci([fn(r.series(q, est, lay, seed=x, sweep=s1)) - fn(r.series(q, est, lay, seed=x, sweep=s0))
                        for x in seeds])

    def drop(ev):
        return falls(*ev)["drop"]

    dfall = {lay: paired("I(X;T)", "sp", lay, lambda ev: -drop(ev)) for lay in L[2:]}      # fall without − with
    dfin = {lay: paired("I(X;T)", "sp", lay, lambda ev: last_finite(ev[1])) for lay in L[2:]}  # final with − without
    dhb = {lay: paired("H_bin", "", lay, lambda ev: last_finite(ev[1])) for lay in L[2:]}
    less_comp = [lay for lay in L[2:] if dfall[lay].at_least(1e-9) is True]
    higher = [lay for lay in L[2:] if dfin[lay].at_least(1e-9) is True]
    less_clu = [lay for lay in L[2:] if dhb[lay].at_least(1e-9) is True]
    met = [d[lay].at_least(1e-9) for d in (dfall, dfin, dhb) for lay in L[2:]]
    rows += ["", "| layer | SP fall without − fall with the penalty, per seed, mean [95 % CI] | final SP I(X;T) with − "
             "without [95 % CI] | final H_bin with − without [95 % CI] |", "|---|---|---|---|"] + [
        f"| T{lay} | {dfall[lay].fmt()} | {dfin[lay].fmt()} | {dhb[lay].fmt()} |" for lay in L[2:]]
    plt = _plt()
    fig, axs = plt.subplots(1, 2, figsize=(8, 3.8), sharey=True)
    for ax, s in zip(axs, sws):
        for lay in L[2:]:
            e, v = r.series("I(X;T)", "sp", lay, sweep=s)
            eh, hb = r.series("H_bin", "", lay, sweep=s)
            l, = ax.plot(np.maximum(e, 1), v, "-", label=f"T{lay} SP")
            ax.plot(np.maximum(eh, 1), hb, "--", color=l.get_color())
        ax.set_xscale("log"); ax.set_xlabel("epoch"); ax.set_title(f"{s}: SP (solid), H_bin 10β (dashed)")
    axs[0].set_ylabel("bits"); axs[0].legend()
    fig.tight_layout()
    figp = save(fig, "orthonormal")
    n = len(L[2:])
    verdict = verdict3(met)
    measured = (f"{seeds_epochs(r)} per λ ∈ {{{', '.join(lams)}}}. With λ = {l1}, SP falls less than with λ = {l0} in "
                f"{len(less_comp)}/{n} of layers T3–T{L[-1]} ({', '.join('T' + x for x in less_comp) or 'none'}) and "
                f"ends higher in {len(higher)}/{n} ({', '.join('T' + x for x in higher) or 'none'}); the "
                f"binned entropy H_bin ends higher (less clustering) in {len(less_clu)}/{n} "
                f"({', '.join('T' + x for x in less_clu) or 'none'}).\n\n" + "\n".join(rows))
    lay = L[-1]
    d_hb = max(abs(dhb[x].value) for x in L[2:])
    f0, f1 = final(r, "I(X;T)", "sp", lay, sws[0]), final(r, "I(X;T)", "sp", lay, sws[-1])
    cp0, cp1 = cmp[(lay, l0)][2], cmp[(lay, l1)][2]
    why = (f"Rule: reproduced if, in every layer T3–T{L[-1]}, the regularised net's SP fall after the peak is smaller, "
           f"its final SP I(X;T) higher (less compression is a higher end point as well as a smaller fall: a net "
           f"that peaks higher can fall as far and still end higher) and its final H_bin higher than the "
           f"unregularised net's, each by the whole 95 % t-interval of the paired difference over seeds (both arms "
           f"start from the same initial network per seed; the fall read is peak → final, each seed from its own "
           f"peak); partially if some of these hold and some are missed (the whole interval on the wrong side of "
           f"0). Sizes: the final H_bin differences reach {d_hb:.2f} bit; the fraction of close pairs in T{lay} is {g3(cp0)} without and "
           f"{g3(cp1)} with the penalty; the SP I(X;T) of T{lay} ends at {f2(f0)} without and {f2(f1)} bits with it "
           f"({'higher' if f1 > f0 else 'lower'} with the penalty).")
    key = (f"smaller fall in {len(less_comp)}/{n} layers, higher final SP in {len(higher)}/{n}, less clustering in "
           f"{len(less_clu)}/{n}")
    power = powers((f"T{lay} fall diff", dfall[lay], COMPRESS), (f"T{lay} final diff", dfin[lay], COMPRESS),
                   (f"T{lay} H_bin diff", dhb[lay], COMPRESS))
    return Result(measured, verdict, why, [figp], key, power)
