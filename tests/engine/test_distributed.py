"""torchrun with 2 CPU processes (gloo): the merged export equals a single-process run of the same seeds."""
import csv
import json
import subprocess
import sys

import pytest

from conftest import REPO, cli
from ibtui.sinks.csv import sidecar_path

SETS = ["--set", "run.seeds=5", "--set", "run.epochs=6", "--set", "measure.snapshots=4", "--set",
        "measure.kde.points=256", "--device", "cpu", "--quiet", "--threads", "1"]


def rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


@pytest.mark.slow  # two torchrun processes, each importing torch
def test_two_process_torchrun_merges_to_the_single_process_export(tmp_path):
    single, merged = tmp_path / "single.csv", tmp_path / "merged.csv"
    res = cli("scenarios/szt_tanh.toml", "--export", single, *SETS)
    assert res.returncode == 0, res.stderr
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29517",
           "-m", "ibtui", "scenarios/szt_tanh.toml", "--export", str(merged), *SETS]
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr[-3000:]
    a, b = rows(single), rows(merged)
    assert a[0] == b[0] and len(a) == len(b)
    # The same records in the same order. Values agree to float tolerance: batched matmuls over 5 seeds and
    # over 3 + 2 seeds may round differently in the last bit, exactly as for any change of the seed count.
    assert [r[:-1] for r in a] == [r[:-1] for r in b]
    assert all(float(x[-1]) == pytest.approx(float(y[-1]), rel=1e-5, abs=1e-6) or (x[-1] == y[-1] == "nan")
               for x, y in zip(a[1:], b[1:]))
    meta = json.loads(sidecar_path(merged).read_text())
    assert meta["finished"] and meta["distributed"]["world_size"] == 2
    assert meta["distributed"]["ranks"] == [[0, 1, 2], [3, 4]]
    assert not list(tmp_path.glob("merged.rank*"))
