"""Claim mnist_plane."""
from __future__ import annotations

import numpy as np

from ibtui.reproduce.common import Result, claim, hidden, _plt, save, plane_axes, ceiling
from ibtui.reproduce.runner import Run, run_spec
from ibtui.reproduce.stats import falls

# which measurement shows the MNIST plane (mnist_fc, the third candidate, is the mnist_fc claim's run)
for _tag, _bins, _var in (("mnist_mi_bin30_kde0.1", 30, 0.1), ("mnist_mi_bin4_kde0.01", 4, 0.01)):
    _m = {"measure.dynamics.enabled": False, "measure.binning.bins": _bins, "measure.kde.noise_variance": _var}
    run_spec(_tag, "mnist_fc", {"run.seeds": 2, "run.epochs": 100, "measure.snapshots": 30, **_m},
             {"run.seeds": 4, "run.epochs": 100, "measure.snapshots": 30, "data.mi_subset": 1000, **_m},
             {"run.seeds": 10, **_m}, data="mnist-5k", medium_data="mnist", full_data="mnist", medium_cost=2 * 12,
             gpu_note="full MNIST, 10 seeds, 200 epochs")


MNIST_CANDIDATES = ["mnist_mi_bin30_kde0.1", "mnist_mi_bin4_kde0.01", "mnist_fc"]


def _setting_label(r: Run, est: str) -> str:
    m = r.sc.get("measure", {})
    if est.startswith("bin"):
        return f"{m.get('binning', {}).get('bins')} bins on [-1, 1]"
    return f"KDE {est.split('_')[1]} σ² = {m.get('kde', {}).get('noise_variance'):g}"


@claim("mnist_plane", "Open finding: with 30 bins the MNIST FC hidden layers sit at log2 N; which measurement lets "
       "the MNIST information plane show its dynamics?", "ibtui (issue 16 part 5); Saxe et al. 2018 used KDE σ² = 0.1 "
       "on MNIST", MNIST_CANDIDATES, figs=[(2, "info_plane", "")],
       note="Same net and training (mnist_fc.toml, 100 epochs on the 5k subset, MI on its 1000 test images, "
            "ceiling log2 1000 = 9.97 bits), measured six ways. A layer 'moves' if its mean I(X;T) spans ≥ 0.3 bit "
            "over the run. The two extra settings' runs keep 2 seeds at cpu scale and 4 at medium: this rule reads "
            "mean curves, not seed intervals.")
def c_mnist_plane(runs):
    rows = ["| setting | run | " + " | ".join(f"T{x}: min–max" for x in hidden(runs[0])) +
            " | hidden layers moving | falling ≥ 0.3 after peak |", "|---|---|" + "---|" * len(hidden(runs[0])) + "---|---|"]
    scores = []
    for r in runs:
        for est in r.estimators():
            if est == "kde_lower":
                continue
            cells, moving, falling, span = [], 0, 0, 0.0
            for lay in hidden(r):
                e, v = r.series("I(X;T)", est, lay)
                lo, hi = float(np.nanmin(v)), float(np.nanmax(v))
                p = falls(e, v)
                cells.append(f"{lo:.2f}–{hi:.2f}")
                moving += (hi - lo) >= 0.3
                falling += p["drop"] >= 0.3
                span += hi - lo
            lab = _setting_label(r, est)
            scores.append((moving, falling, span, lab, r.path.stem, est))
            rows.append(f"| {lab} | `{r.path.stem}` | " + " | ".join(cells) + f" | {moving} | {falling} |")
    best = max(scores)
    fc = runs[-1]
    fc_default = [s for s in scores if s[4] == "mnist_fc"]
    fc_best = max(fc_default)
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3.9))
    r30 = runs[0]
    plane_axes(a1, r30, "bin30", title="30 bins (the paper's measure)", ceiling=ceiling(r30))
    rb = [r for r in runs if r.path.stem == best[4]][0]
    plane_axes(a2, rb, best[5], title=f"{best[3]} (best)", ceiling=ceiling(rb))
    fig.tight_layout()
    figp = save(fig, "mnist_plane")
    measured = (f"Ceiling log2 N = {ceiling(r30):.2f} bits. Per setting, the range of the mean I(X;T) of each hidden "
                f"layer over the run:\n\n" + "\n".join(rows) +
                f"\n\nBest: **{best[3]}** ({best[0]} hidden layers move, {best[1]} fall ≥ 0.3 bit after their peak). "
                f"`mnist_fc.toml` now measures with {fc.sc['measure']['estimators']}: "
                f"{_setting_label(fc, 'kde_upper')} and {_setting_label(fc, 'bin2')}.")
    why = ("Verdict rule (an open question, not a paper's claim): *answered* if some setting moves ≥ 3 of the 5 hidden "
           "layers and `mnist_fc.toml` now uses it. "
           "The 30-bin estimate is pinned at log2 N in every hidden layer (each image its own cell), so the paper's "
           "MNIST plane carries no information; only the softmax output moves. The KDE bound with a σ² comparable "
           "to the spread of the layer's units takes the layers off the ceiling; binning with 2 bins (the sign of "
           "each unit) moves the narrowest layers only. Fewer MI points alone lowers the ceiling (log2 1000 here "
           "against log2 10,000 on the full test set) but leaves 30-bin layers pinned to it; a layer subset helps "
           "only in that the 20-unit layer T5 is the one binning can resolve.")
    verdict = "answered" if fc_best[:3] == best[:3] and best[0] >= 3 else "open"
    return Result(measured, verdict, why, [figp], f"best: {best[3]} ({best[0]}/5 layers move)")
