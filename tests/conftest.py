import os
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO.parent / "shared" / "data").resolve()

# Small tensors: one thread avoids oversubscription on small CI machines and keeps timings steady.
torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} not present")
    return SHARED_DATA


def cli(*args, input: str | None = None):
    """Run the `ibtui` command in this process (Typer's CliRunner: no TTY, so headless); fast, no torch re-import.

    Returns an object with `returncode`, `stdout` and `stderr`, like `run_ibtui`.
    """
    from types import SimpleNamespace

    from typer.testing import CliRunner

    from ibtui.cli import app, command_args

    res = CliRunner().invoke(app, command_args([str(a) for a in args]), input=input, prog_name="ibtui")
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    return SimpleNamespace(returncode=res.exit_code, stdout=res.stdout, stderr=res.stderr)


def run_ibtui(*args, cwd=REPO, timeout=300, env=None, **kw):
    """Run the real CLI in a subprocess (no TTY, so headless): only for what needs a process (signals, torchrun)."""
    import subprocess

    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "ibtui", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL, env=e, **kw)
