"""What the benchmark scripts share: the repository on sys.path, the SZT scenario and its snapshot density,
device synchronisation, a sink that drops records, the timing of one engine run and the best of several timings."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ibtui.engine.trainer import Engine  # noqa: E402
from ibtui.records import Sink

SZT_SCENARIO = REPO / "scenarios" / "szt_tanh.toml"
SNAPSHOT_DENSITY = 300 / 8000  # szt_tanh.toml: 300 snapshots in 8000 epochs


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


NullSink = Sink  # takes records and keeps nothing: a benchmark times the engine, not the export


def seed_epochs_per_s(sc, device: torch.device) -> float:
    """Seed-epochs per second of one full run of a fresh engine (built outside the timing)."""
    engine = Engine(sc)
    sync(device)
    t0 = time.perf_counter()
    engine.run(NullSink())
    sync(device)
    return sc.run.seeds * sc.run.epochs / (time.perf_counter() - t0)


def best(fn, rounds: int = 3, calls: int = 1) -> float:
    """Seconds a call of fn: the best of `rounds` timings of `calls` calls each (warm fn up first where it
    matters; this machine's neighbours come and go, and the best timing is the least disturbed)."""
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - t0) / calls)
    return min(times)
