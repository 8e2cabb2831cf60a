"""Claim snr_transition: the gradient SNR falls from drift to diffusion where compression starts."""
from __future__ import annotations

import math

import numpy as np

from ibtui.reproduce.common import Result, claim, hidden, powers, seeds_epochs, _plt, save, curves_axes, transitions
from ibtui.reproduce.stats import FEW, Est, falls, g3, mean_ci, mean_sd, ms, outcome, verdict3


def snr_onset(e, snr) -> float:
    """Where the SNR's fall begins: the epoch of its maximum (the end of the drift phase's rise)."""
    ok = np.isfinite(snr) & (e > 0)
    return float(e[ok][int(np.argmax(snr[ok]))]) if ok.any() else math.nan


def half_fall(e, v) -> float:
    """Where compression is half done: the first epoch after the peak at which I(X;T) has fallen half of its fall
    peak → final (NaN when it falls by less than 0.05 bit), the counterpart of the detector's steepest SNR fall."""
    f = falls(e, v)
    if not f["drop"] > 0.05:
        return math.nan
    i = int(np.nanargmax(v))
    hit = np.nonzero(v[i:] <= f["peak"] - f["drop"] / 2)[0]
    return float(e[i + hit[0]]) if len(hit) else math.nan


def decades(a: float, b: float) -> float:
    return math.log10(a / b) if math.isfinite(a) and math.isfinite(b) and a > 0 and b > 0 else math.nan


def band(e: Est, width: float):
    """Inside ± width by the whole interval: True; outside by the whole interval: False; FEW; else None."""
    lo, hi = e.at_least(-width), e.at_most(width)
    return False if False in (lo, hi) else FEW if FEW in (lo, hi) else True if (lo, hi) == (True, True) else None



@claim("snr_transition", "The gradient SNR falls from drift (high SNR) to diffusion (low SNR), and compression of "
       "I(X;T) starts at that transition", "Shwartz-Ziv, Painsky & Tishby 2019 (ICLR workshop / arXiv), §2.2, §6; "
       "SZT 2017 §3.5", ["szt_tanh"], figs=[(0, "dynamics", "")],
       note="SNR = ‖mean g‖/√tr Cov g over the mini-batches of the epoch before each snapshot (szt_tanh.toml keeps "
            "the one-epoch window, `measure.dynamics.window_steps = 0`: 7 batches at batch 512); transition = steepest "
            "fall of the smoothed log SNR (ibtui's detector), a midpoint of the SNR's fall. The rule compares like "
            "with like: the onset of the SNR fall (its maximum) with the onset of compression (the I(X;T) peak), "
            "and the detector's midpoint with compression's midpoint (half of the fall peak → final done).")
def c_snr(runs):
    (r,) = runs
    L = hidden(r)
    last = L[-1]
    rows = ["| layer | transition epoch (seeds declared) | SNR at epoch 1 | epoch of the mean SNR's maximum | SNR at end | "
            "compression start of this layer (binning) |", "|---|---|---|---|---|---|"]
    for lay in r.layers():
        tr = transitions(r, lay)
        es, snr = r.series("snr", "", lay)
        emax = es[int(np.nanargmax(snr))] if len(snr) else math.nan
        cs = [falls(*r.series("I(X;T)", "bin30", lay, seed=s))["peak_epoch"] for s in r.seeds()] if lay in L else []
        rows.append(f"| T{lay} | {ms(tr)} | {g3(snr[1] if len(snr) > 1 else math.nan)} | {g3(emax)} | {g3(snr[-1] if len(snr) else math.nan)} | "
                    f"{ms(cs) if cs else '–'} |")
    seeds = r.seeds()
    tr = transitions(r, last)
    cs = [falls(*r.series("I(X;T)", "bin30", last, seed=s))["peak_epoch"] for s in seeds]
    so = [snr_onset(*r.series("snr", "", last, seed=s)) for s in seeds]
    cm = [half_fall(*r.series("I(X;T)", "bin30", last, seed=s)) for s in seeds]
    onset = mean_ci([decades(c, o) for c, o in zip(cs, so)])     # onset with onset
    mid = mean_ci([decades(c, t) for c, t in zip(cm, tr)])       # midpoint with midpoint
    mt, _, nt = mean_sd(tr)
    mc, _, _ = mean_sd(cs)
    plt = _plt()
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    curves_axes(a1, r, "snr", "", r.layers(), ylabel="gradient SNR", logy=True)
    curves_axes(a2, r, "I(X;T)", "bin30", L[2:], ylabel="I(X;T) [bits, 30 bins]")
    for ax in (a1, a2):
        if np.isfinite(mt):
            ax.axvline(mt, color="k", ls="--", lw=0.8)
        if np.isfinite(mc):
            ax.axvline(mc, color="r", ls=":", lw=0.8)
    a1.legend(ncol=3); a2.legend()
    a1.set_title(f"SZT tanh: SNR per layer; dashed = mean transition of T{last}, dotted = mean compression start")
    fig.tight_layout()
    figp = save(fig, "snr_transition")
    aligned = {k: band(e, 0.3) for k, e in (("onset", onset), ("midpoint", mid))}
    es, sn = r.series("snr", "", last)
    e_snr_max = float(es[int(np.nanargmax(sn))]) if len(sn) else math.nan
    declared = nt >= 0.8 * len(seeds)
    v = verdict3(list(aligned.values()))
    verdict = "not reproduced" if not declared else "partially" if v == "not reproduced" else v
    measured = (f"{seeds_epochs(r)}. Last hidden layer T{last}, per seed (mean ± SD): onsets: SNR maximum at epoch "
                f"{ms(so)}, compression start (peak of binned I(X;T)) {ms(cs)}, log10(start / SNR maximum) = "
                f"{onset.fmt(3)} decades (mean over seeds [95 % CI]); midpoints: transition (steepest SNR fall) at "
                f"epoch {ms(tr)} ({nt}/{len(seeds)} seeds declared), compression half done at {ms(cm)}, "
                f"log10(half / transition) = {mid.fmt(3)} decades. The mean SNR of "
                f"T{last} rises during the fit and peaks at epoch {e_snr_max:.0f}; the detector's transition is the "
                f"steepest point of the fall that follows.\n\n" + "\n".join(rows))
    why = ("Rule: reproduced if a transition is declared in ≥ 80 % of seeds and, per seed in the last hidden layer, "
           "the compression onset lies within 0.3 decades of the SNR onset and compression's midpoint within 0.3 "
           "decades of the SNR transition (the whole 95 % t-interval of each mean log10 ratio inside ± 0.3; the "
           "earlier rule compared the compression onset with the SNR midpoint); partially if the transition is "
           "found and a ratio lies wholly outside ± 0.3; within noise where an interval straddles ± 0.3; too few "
           f"seeds under 5 seeds. Onsets aligned: {outcome(aligned['onset'])}; midpoints aligned: "
           f"{outcome(aligned['midpoint'])}. The 0.3-decade tolerance is this report's choice (the papers give none).")
    key = (f"T{last}: onsets {onset.fmt(2)}, midpoints {mid.fmt(2)} decades apart (SNR max {g3(mean_sd(so)[0])} vs "
           f"start {g3(mc)}; transition {g3(mt)} vs half fall {g3(mean_sd(cm)[0])} epochs)")
    return Result(measured, verdict, why, [figp], key, powers(("onsets", onset, 0.3), ("midpoints", mid, 0.3)))
