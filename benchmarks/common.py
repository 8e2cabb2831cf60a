"""What the benchmark scripts share: the repository on sys.path, the SZT scenario and its snapshot density,
device synchronisation, a sink that drops records, and the timing of one engine run."""
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
