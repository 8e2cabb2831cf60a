"""Claim szt_relu: binning shows no compression in a ReLU network."""
from __future__ import annotations



from ibtui.reproduce.common import FLAT, Result, claim, fall_ci, fig_plane_and_curves, hidden, layer_table, \
    powers, seeds_epochs
from ibtui.reproduce.runner import run_spec
from ibtui.reproduce.stats import FEW, f2, falls, verdict3

run_spec("szt_relu", "szt_relu",
         {"run.seeds": 5, "run.epochs": 3000, "measure.snapshots": 80},
         {"run.seeds": 10, "run.epochs": 10000, "measure.snapshots": 80},
         {"run.seeds": 50, "run.epochs": 10000}, medium_cost=2 * 10 / 3)


@claim("szt_relu", "SZT ReLU network: binning shows no compression phase", "Saxe et al. 2018 (ICLR), Fig. 1B",
       ["szt_relu"], figs=[(0, "info_plane", "")], note="Bins follow the activation ([0, max] per seed and snapshot, 30 bins). Paper scale: "
       "50 seeds × 10⁴ epochs.")
def c_szt_relu(runs):
    (r,) = runs
    L = hidden(r)
    est = r.estimators()[0]
    drops = {lay: falls(*r.series("I(X;T)", est, lay)) for lay in L}
    dips = {lay: fall_ci(r, est, lay, "dip") for lay in L}
    worst = max(L, key=lambda lay: dips[lay].value)
    tab = layer_table(r, [est], L)
    fig = fig_plane_and_curves(r, est, "szt_relu", "SZT ReLU, 30 bins on [0, max]")
    met = [dips[lay].at_most(FLAT - 1e-12) for lay in L]   # "< FLAT" at the interval's high end
    some = sum(m is False for m in met)
    verdict = verdict3(met) if some <= 1 else "not reproduced"
    if some == 1 and FEW not in met:
        verdict = "partially"
    above = sum(dips[lay].value >= FLAT for lay in L)
    measured = (f"{seeds_epochs(r)}, estimator {est}. Largest fall after a peak (peak → lowest later value): T{worst}, "
                f"{f2(drops[worst]['peak'])} → {f2(drops[worst]['low'])} bits at epoch {drops[worst]['low_epoch']:.0f} "
                f"(fall {dips[worst].fmt()}), ending at {f2(drops[worst]['final'])}. Last hidden layer T{L[-1]}: "
                f"{f2(drops[L[-1]]['start'])} → {f2(drops[L[-1]]['final'])} bits.\n\n{tab}")
    out_l = r.layers()[-1]
    od = falls(*r.series("I(X;T)", est, out_l))
    rec = {lay: d["final"] - d["low"] for lay, d in drops.items()}
    dipping = [lay for lay in L if drops[lay]["dip"] >= 0.05]
    def span(vals):
        lo, hi = min(vals), max(vals)
        return f"{lo:.2f}" if f"{lo:.2f}" == f"{hi:.2f}" else f"{lo:.2f}–{hi:.2f}"

    size = (f"the hidden layers that dip at all (≥ 0.05 bit: {', '.join('T' + x for x in dipping)}) fall by "
            f"{span([drops[x]['dip'] for x in dipping])} bit after the peak and recover "
            f"{span([rec[x] for x in dipping])} bit by the end" if dipping else "no hidden layer dips by 0.05 bit or more")
    why = (f"Rule: reproduced if no hidden layer's mean I(X;T) falls by ≥ {FLAT} bit from its peak to its lowest later "
           f"value (peak → lowest, the stricter fall: a dip that recovers still counts against 'no compression'; "
           f"each seed from its own peak), the whole 95 % t-interval of the mean over seeds below {FLAT}; not "
           f"reproduced where ≥ 2 layers' whole intervals lie above it, partially where one does, within noise "
           f"where an interval straddles it. {some} of {len(L)} hidden layers lie above it by the whole interval, "
           f"{above} by the point estimate. (The softmax output T{out_l}, bounded in [0, 1] like tanh, falls {f2(od['peak'])} → "
           f"{f2(od['final'])} bits; {size}.)")
    key = f"largest fall T{worst}: {dips[worst].fmt()} bits (peak → lowest)"
    return Result(measured, verdict, why, [fig], key, powers((f"T{worst} dip", dips[worst], FLAT)))
