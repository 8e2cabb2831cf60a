"""Runs larger than one process: `torchrun --nproc-per-node K -m ibtui SCENARIO --export run.csv`.

Seeds are sharded over the ranks in contiguous blocks (a seed's numbers depend only on the scenario and
the seed, so the split changes nothing). Each rank exports its own records to `run.rank<r>.csv`; when all
are done, rank 0 merges them (ibtui.sinks.csv.merge) into `run.csv` and `run.meta.json`: the per-seed
rows of every rank, the `mean` rows recomputed over all seeds exactly as the engine computes them, in the order a single
process writes them. The rank files are removed after a successful merge.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ibtui.errors import ScenarioError
from ibtui.scenario import Scenario, with_changes


@dataclass(frozen=True)
class DistContext:
    rank: int
    world: int
    local_rank: int

    @property
    def active(self) -> bool:
        return self.world > 1


def context_from_env() -> DistContext:
    """The torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK), or a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return DistContext(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def init(ctx: DistContext, device: str) -> None:
    """Join the process group: NCCL when every rank has its own GPU, gloo otherwise."""
    if not ctx.active or torch.distributed.is_initialized():
        return
    backend = "nccl" if device.startswith("cuda") and torch.cuda.is_available() else "gloo"
    torch.distributed.init_process_group(backend=backend)


def shard(sc: Scenario, ctx: DistContext) -> Scenario:
    """This rank's block of seeds (the first ranks take one more when they do not divide evenly), and its GPU."""
    n = sc.run.seeds
    if ctx.world > n:
        raise ScenarioError(f"torchrun started {ctx.world} processes but run.seeds = {n}; use at most {n} "
                            f"processes or more seeds.")
    base, extra = divmod(n, ctx.world)
    count = base + (1 if ctx.rank < extra else 0)
    first = sc.run.first_seed + ctx.rank * base + min(ctx.rank, extra)
    changes = {"run.first_seed": first, "run.seeds": count}
    if sc.run.device in ("auto", "cuda") and torch.cuda.is_available():
        changes["run.device"] = f"cuda:{ctx.local_rank % torch.cuda.device_count()}"
    return with_changes(sc, changes)


def barrier() -> None:
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
