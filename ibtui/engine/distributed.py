"""Runs larger than one process: `torchrun --nproc-per-node K -m ibtui SCENARIO --export run.csv`.

Seeds are sharded over the ranks in contiguous blocks (a seed's numbers depend only on the scenario and
the seed, so the split changes nothing). Each rank exports its own records to `run.rank<r>.csv`; when all
are done, rank 0 merges them into `run.csv` and `run.meta.json`: the per-seed rows of every rank, the
`mean` rows recomputed over all seeds exactly as the engine computes them, in the order a single
process writes them. The rank files are removed after a successful merge.
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ibtui.engine.records import FIELDS
from ibtui.scenario import Scenario, ScenarioError, with_changes
from ibtui.sinks.csv import format_value, sidecar_path


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


def rank_path(export: Path, rank: int) -> Path:
    return export.with_name(f"{export.stem}.rank{rank}{export.suffix}")


def barrier() -> None:
    if torch.distributed.is_initialized():
        torch.distributed.barrier()


def merge(export: Path, world: int) -> int:
    """Merge the rank files into `export` and its sidecar; returns the number of rows written."""
    parts = [rank_path(export, r) for r in range(world)]
    rows_by_rank = []
    for p in parts:
        with open(p, newline="", encoding="utf-8") as f:
            rows_by_rank.append(list(csv.DictReader(f)))
    # Every rank emits the same keys in the same order; walk rank 0's rows and gather the seeds of all ranks.
    seeds_of: dict[tuple, list[dict]] = {}
    for rows in rows_by_rank:
        for row in rows:
            if row["seed"] != "mean":
                seeds_of.setdefault(_key(row), []).append(row)
    out: list[list[str]] = []
    for row in rows_by_rank[0]:
        key = _key(row)
        if row["seed"] != "mean":
            continue
        per_seed = seeds_of.pop(key, [])
        if per_seed:
            out.extend([r[f] for f in FIELDS] for r in per_seed)
            values = torch.tensor([float(r["value"]) for r in per_seed], dtype=torch.float32)
            finite = values[torch.isfinite(values)]
            mean = float(finite.mean()) if finite.numel() else float("nan")
            out.append([*(row[f] for f in FIELDS[:-1]), format_value(mean)])
        else:  # a run-wide record (noise level), identical on every rank
            out.append([row[f] for f in FIELDS])
    for key, rest in seeds_of.items():  # records without a mean row (a diverged seed's marker)
        out.extend([r[f] for f in FIELDS] for r in rest)
    tmp = export.with_suffix(export.suffix + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(FIELDS)
        w.writerows(out)
    os.replace(tmp, export)
    metas = [json.loads(sidecar_path(p).read_text()) for p in parts]
    meta = dict(metas[0])
    meta["csv"] = export.name
    meta["rows"] = len(out)
    meta["finished"] = all(m.get("finished") for m in metas)
    meta["ended"] = max((m.get("ended") or "") for m in metas) or None
    meta["distributed"] = {"world_size": world, "ranks": [m.get("run_info", {}).get("seeds") for m in metas]}
    meta["scenario"]["run"]["first_seed"] = min(m["scenario"]["run"]["first_seed"] for m in metas)
    meta["scenario"]["run"]["seeds"] = sum(m["scenario"]["run"]["seeds"] for m in metas)
    sidecar_path(export).write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
    for p in parts:
        p.unlink()
        sidecar_path(p).unlink()
    return len(out)


def _key(row: dict) -> tuple:
    return (row["run"], row["sweep"], row["epoch"], row["step"], row["layer"], row["quantity"], row["estimator"])
