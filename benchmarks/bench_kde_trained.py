"""KDE on all 4096 SZT points of a *trained* network: the tiled near-pair sums (compiled kernel and PyTorch)
against the fused attention kernel, per layer, at the first and the last snapshot, 1 and 2 torch threads, and
all three against exact float64 pairwise sums.

    python benchmarks/bench_kde_trained.py [--epochs 8000] [--seeds 20]

Trains `szt_tanh` (2 snapshots, KDE on all points) and keeps the layers the KDE probe is handed at each snapshot;
synthetic layers (bench_estimators.py) are spread like an untrained network's, while a trained one's narrow
layers collapse into clusters, which changes how many tile pairs the cut-off skips.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import best  # noqa: E402
import ibtui.engine.probes.kde as kde_probe  # noqa: E402
from ibtui import api  # noqa: E402
from ibtui.measures import native  # noqa: E402
from ibtui.measures.kde import kde_mi, kde_mi_attention, kde_mi_tiled  # noqa: E402

KEYS = ("upper_xt", "lower_xt", "upper_ty", "lower_ty")


def trained_layers(epochs: int, seeds: int) -> list[tuple[list[torch.Tensor], torch.Tensor]]:
    kept = []
    original = kde_probe.KdeProbe._mi

    def keep(self, layers, labels):
        kept.append(([h.clone() for h in layers], labels[0].clone() if labels.dim() == 2 else labels.clone()))
        return original(self, layers, labels)

    kde_probe.KdeProbe._mi = keep
    try:
        api.run("szt_tanh", set={"run.epochs": epochs, "run.seeds": seeds, "measure.snapshots": 2,
                                 "measure.kde.points": 0})
    finally:
        kde_probe.KdeProbe._mi = original
    return kept


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=8000)
    ap.add_argument("--seeds", type=int, default=20)
    args = ap.parse_args()
    snaps = trained_layers(args.epochs, args.seeds)
    var = 1e-3
    print(f"szt_tanh, {args.seeds} seeds, all 4096 points, σ² = {var:g}: seconds a snapshot (best of 3; tiles: the "
          f"compiled kernel where one is built, {'here' if native.tile_sums() else 'not here'})")
    for name, (layers, y) in zip(("first snapshot", "last snapshot"), (snaps[0], snaps[-1])):
        for threads in (1, 2):
            torch.set_num_threads(threads)
            tiled = [best(lambda: kde_mi_tiled([h], y, var)) for h in layers]
            together = best(lambda: kde_mi_tiled(layers, y, var))  # the probe's call: layers on the threads
            plain = [best(lambda: kde_mi_tiled([h], y, var, compiled=False), rounds=1) for h in layers]
            fused = best(lambda: kde_mi_attention(layers, y, var), rounds=1)
            print(f"  {name:15} {threads} thread(s): tiles {together:6.2f} s as the probe calls them (one layer at a "
                  f"time: {sum(tiled):.2f} s = " + " + ".join(f"{t:.2f}" for t in tiled) + f"), PyTorch tiles "
                  f"{sum(plain):6.2f} s, fused attention "
                  f"{fused:6.2f} s; attention / tiles {fused / together:.1f}×")
        torch.set_num_threads(2)
        worst = {"tiles": 0.0, "PyTorch tiles": 0.0, "fused attention": 0.0}
        for h in layers:
            exact = kde_mi(h[:2].double(), y, var)
            for label, got in (("tiles", kde_mi_tiled([h[:2]], y, var)[0]),
                               ("PyTorch tiles", kde_mi_tiled([h[:2]], y, var, compiled=False)[0]),
                               ("fused attention", kde_mi_attention([h[:2]], y, var)[0])):
                worst[label] = max(worst[label], *(float((got[k].double() - exact[k]).abs().max()) for k in KEYS))
        print(f"  {name:15} largest difference from exact float64 sums (2 seeds, every layer, the 4 quantities): "
              + ", ".join(f"{label} {value:.1e} bits" for label, value in worst.items()))


if __name__ == "__main__":
    main()
