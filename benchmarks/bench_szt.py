"""Training throughput on the SZT network: the batched engine against a plain per-seed PyTorch loop.

Both run in this process on the same device and thread count, so the ratio is fair. The engine runs
with binning measurement on at the snapshot density of scenarios/szt_tanh.toml (300 snapshots per 8000
epochs); the plain loop measures nothing. On a CPU with a C compiler the engine trains with the compiled
step (run.compiled_step = true) of each build (benchmarks/builds.py: native, x86-64-v3 = AVX2, and x86-64 =
SSE2 with --builds), and a "torch" row times it with PyTorch's step (run.compiled_step = false), all in the same
run as the plain loop. Prints a table and writes JSON (--json).

    python benchmarks/bench_szt.py [--device cpu|cuda] [--seeds 1 50] [--threads 1]
                                   [--builds native x86-64-v3 x86-64]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from builds import BUILDS, available, build
from common import SNAPSHOT_DENSITY, SZT_SCENARIO, NullSink, seed_epochs_per_s, sync

from ibtui.api import DEFAULT_CPU_THREADS
from ibtui.data.szt import szt_inputs, szt_labels
from ibtui.engine.backends import compiled_step
from ibtui.engine.trainer import Engine
from ibtui.scenario import load_scenario, with_changes

REPEATS = 3  # every rate is the best of this many timings: this machine's neighbours come and go


def plain_loop(device: torch.device, n_seeds: int, epochs: int) -> float:
    """seed-epochs/s of the textbook loop: one nn.Sequential per seed, one seed after another."""
    x = torch.as_tensor(szt_inputs(), dtype=torch.float32, device=device)
    y = torch.as_tensor(szt_labels(szt_inputs()).astype("int64"), device=device)
    g = torch.Generator().manual_seed(0)
    train = torch.randperm(4096, generator=g)[:3277].to(device)
    sizes = [12, 10, 7, 5, 4, 3, 2]
    t0 = time.perf_counter()
    for seed in range(n_seeds):
        torch.manual_seed(seed)
        layers = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [torch.nn.Linear(a, b), torch.nn.Tanh()]
        net = torch.nn.Sequential(*layers[:-1]).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=4e-4)
        for _ in range(epochs):
            perm = train[torch.randperm(len(train), device=device)]
            for start in range(0, len(perm), 512):
                idx = perm[start:start + 512]
                loss = F.cross_entropy(net(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
    sync(device)
    return n_seeds * epochs / (time.perf_counter() - t0)


def engine_rate(device: torch.device, n_seeds: int, epochs: int, measure: bool, graph: bool = False,
                compiled: bool = True) -> float:
    sc = load_scenario(SZT_SCENARIO)
    snaps = max(2, int(round(epochs * SNAPSHOT_DENSITY))) if measure else 1
    sc = with_changes(sc, {"run.seeds": n_seeds, "run.epochs": epochs, "run.device": str(device),
                           "run.cuda_graph": graph, "run.compiled_step": compiled,
                           "measure.snapshots": snaps, "measure.schedule": "linear",
                           "measure.estimators": ["binning"] if measure else [],
                           "measure.dynamics.enabled": False, "measure.clustering.enabled": False})
    Engine(sc).run(NullSink())  # warm-up is part of nothing: a fresh engine is timed
    return max(seed_epochs_per_s(sc, device) for _ in range(REPEATS))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 50])
    ap.add_argument("--threads", type=int, default=0,
                    help="torch CPU threads for the engine (0 = what `ibtui` uses: 1 on a CPU, torch's default "
                         "on a GPU); the plain loop gets the best of 1 thread and this count")
    ap.add_argument("--epochs", type=int, default=0, help="engine epochs per timing (0 = auto)")
    ap.add_argument("--plain-epochs", type=int, default=0, help="plain-loop epochs per seed (0 = auto)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--builds", nargs="+", default=["native", "x86-64-v3"], choices=list(BUILDS),
                    help="builds of the compiled step to time on a CPU (default: native and x86-64-v3)")
    args = ap.parse_args()
    device = torch.device(args.device)
    threads = args.threads or (DEFAULT_CPU_THREADS if device.type == "cpu" else torch.get_num_threads())
    rows = []
    plain_loop(device, 1, 3)  # warm-up (CUDA context, allocator)
    plain_by_threads = {}
    for t in sorted({1, threads, torch.get_num_threads()}):  # tiny ops often run faster on one thread:
        # give the plain loop its best
        torch.set_num_threads(t)
        plain_by_threads[t] = max(plain_loop(device, 3, args.plain_epochs or 30) for _ in range(REPEATS))
    plain = max(plain_by_threads.values())
    torch.set_num_threads(threads)
    for s in args.seeds:
        epochs = args.epochs or (400 if s <= 10 else 160)
        on = engine_rate(device, s, epochs, measure=True)
        off = engine_rate(device, s, epochs, measure=False)
        row = {"device": str(device), "seeds": s, "plain_seed_epochs_per_s": plain,
               "plain_by_threads": plain_by_threads, "engine_measure_on": on, "engine_measure_off": off,
               "ratio_on": on / plain, "ratio_off": off / plain, "engine_threads": threads,
               "torch": torch.__version__}
        if device.type == "cpu":  # the compiled step of the other builds (the rows above: native)
            for name in available(args.builds):
                if name == "native":
                    continue
                with build(name):
                    if compiled_step.library() is not None:
                        row.setdefault("builds", {})[name] = engine_rate(device, s, epochs, measure=True)
        if device.type == "cpu" and compiled_step.library() is not None:  # the same with PyTorch's training step
            row["pytorch_step_measure_on"] = engine_rate(device, s, epochs, measure=True, compiled=False)
            row["pytorch_step_ratio_on"] = row["pytorch_step_measure_on"] / plain
        if device.type == "cuda":  # the same with training epochs replayed as CUDA graphs (run.cuda_graph)
            row["graph_measure_on"] = engine_rate(device, s, epochs, measure=True, graph=True)
            row["graph_measure_off"] = engine_rate(device, s, epochs, measure=False, graph=True)
            row["graph_ratio_on"] = row["graph_measure_on"] / plain
            row["graph_ratio_off"] = row["graph_measure_off"] / plain
        rows.append(row)
    print(f"{'device':8} {'seeds':>5} {'plain loop':>12} {'engine (binning on)':>20} {'engine (off)':>13} "
          f"{'ratio on':>9} {'ratio off':>9}   (seed-epochs/s)")
    print("plain loop seed-epochs/s by thread count: "
          + ", ".join(f"{t}: {v:.1f}" for t, v in plain_by_threads.items()) + f"; engine threads: {threads}")
    for r in rows:
        print(f"{r['device']:8} {r['seeds']:5d} {r['plain_seed_epochs_per_s']:12.1f} {r['engine_measure_on']:20.1f} "
              f"{r['engine_measure_off']:13.1f} {r['ratio_on']:8.1f}× {r['ratio_off']:8.1f}×")
        for name, rate in r.get("builds", {}).items():
            print(f"{'  ' + name:8} {r['seeds']:5d} {'':12} {rate:20.1f} {'':13} {rate / r['plain_seed_epochs_per_s']:8.1f}×"
                  f"             (IBTUI_CFLAGS={BUILDS[name]}: the compiled step built for it)")
        if "pytorch_step_measure_on" in r:
            print(f"{'  torch':8} {r['seeds']:5d} {'':12} {r['pytorch_step_measure_on']:20.1f} {'':13} "
                  f"{r['pytorch_step_ratio_on']:8.1f}×             (run.compiled_step = false: PyTorch's step)")
        if "graph_measure_on" in r:
            print(f"{'  graph':8} {r['seeds']:5d} {'':12} {r['graph_measure_on']:20.1f} {r['graph_measure_off']:13.1f} "
                  f"{r['graph_ratio_on']:8.1f}× {r['graph_ratio_off']:8.1f}×   (run.cuda_graph = true)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
