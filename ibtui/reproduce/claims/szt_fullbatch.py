"""Claim szt_fullbatch: full-batch gradient descent compresses too (not SGD noise)."""
from __future__ import annotations



from ibtui.reproduce.common import COMPRESS, Result, claim, fall_ci, fig_plane_and_curves, hidden, \
    layer_table, powers, seeds_epochs
from ibtui.reproduce.runner import run_spec
from ibtui.reproduce.stats import f2, falls, verdict3

# KDE on 1024 points at the cpu and medium scales, as for claim szt_tanh (its comment says why).
run_spec("szt_tanh_fullbatch", "szt_tanh",
         {"run.seeds": 5, "run.epochs": 6000, "measure.snapshots": 80, "train.batch_size": 4096,
          "measure.dynamics.enabled": False, "measure.kde.points": 1024},
         {"run.seeds": 10, "run.epochs": 20000, "measure.snapshots": 80, "train.batch_size": 4096,
          "measure.dynamics.enabled": False, "measure.kde.points": 1024},
         {"run.seeds": 50, "run.epochs": 20000, "train.batch_size": 4096, "measure.kde.points": 0,
          "measure.dynamics.enabled": False}, medium_cost=2 * 20 / 6)


@claim("szt_fullbatch", "Compression is not caused by SGD noise: full-batch gradient descent gives the same "
       "information plane", "Saxe et al. 2018, as told in the IB survey blog",
       ["szt_tanh_fullbatch", "szt_tanh"], figs=[(0, "info_plane", "")],
       note="Full batch = one step an epoch (batch 4096 ≥ the 3277 training points), so the run has 6000 epochs "
            "(6000 steps) against SGD's 3000 epochs of 7 steps. Same Adam 4e-4, same bins and KDE.")
def c_szt_fullbatch(runs):
    fb, sgd = runs
    last = hidden(fb)[-1]
    out, ci = {}, {}
    for tag, r in (("full batch", fb), ("SGD batch 512", sgd)):
        out[tag] = {est: falls(*r.series("I(X;T)", est, last)) for est in ("bin30", "kde_upper")}
        ci[tag] = {est: fall_ci(r, est, last, "drop") for est in ("bin30", "kde_upper")}
    fig = fig_plane_and_curves(fb, "bin30", "szt_fullbatch", "SZT tanh, full-batch GD, 30 bins")
    met = [ci["full batch"][est].at_least(COMPRESS) for est in ("bin30", "kde_upper")]
    verdict = verdict3(met)
    lines = [f"| run | T{last} binned: start → peak (epoch) → final | fall peak → final per seed, mean [95 % CI] | KDE "
             f"upper: peak → final | fall per seed, mean [95 % CI] |", "|---|---|---|---|---|"]
    for t, d in out.items():
        b, k = d["bin30"], d["kde_upper"]
        lines.append(f"| {t} | {f2(b['start'])} → {f2(b['peak'])} ({b['peak_epoch']:.0f}) → {f2(b['final'])} | "
                     f"{ci[t]['bin30'].fmt()} | {f2(k['peak'])} → {f2(k['final'])} | {ci[t]['kde_upper'].fmt()} |")
    measured = (f"Full batch: {seeds_epochs(fb)}; SGD: {seeds_epochs(sgd)} (the szt_tanh run).\n\n" + "\n".join(lines)
                + "\n\n" + layer_table(fb, ["bin30"], hidden(fb)))
    why = (f"Rule: reproduced if the full-batch run's last hidden layer falls from its peak to the final value "
           f"(a lasting fall; each seed from its own peak) by ≥ {COMPRESS} bit under binning and KDE, the whole "
           f"95 % t-interval of the mean over seeds above it, as the SGD run does; not reproduced only where the "
           f"whole interval is below it. Full-batch fall: binning {ci['full batch']['bin30'].fmt()}, KDE "
           f"{ci['full batch']['kde_upper'].fmt()} bits; SGD: {ci['SGD batch 512']['bin30'].fmt()}, "
           f"{ci['SGD batch 512']['kde_upper'].fmt()}.")
    key = (f"T{last} fall: full batch {ci['full batch']['bin30'].fmt()}, SGD {ci['SGD batch 512']['bin30'].fmt()} "
           f"bits (binning)")
    power = powers(*((f"T{last} {est}", ci["full batch"][est], COMPRESS) for est in ("bin30", "kde_upper")))
    return Result(measured, verdict, why, [fig], key, power)
