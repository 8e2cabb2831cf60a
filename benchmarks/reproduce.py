#!/usr/bin/env python
"""Moved into the package: `ibtui reproduce` (ibtui/reproduce/, one module a claim under claims/).

This shim keeps the old command working: `python benchmarks/reproduce.py ARGS` = `ibtui reproduce ARGS`
(`--full` = `--scale full`).
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this tree's ibtui, not an installed copy

from ibtui.cli import main  # noqa: E402

if __name__ == "__main__":
    main(["reproduce", *[x for a in sys.argv[1:] for x in (["--scale", "full"] if a == "--full" else [a])]])
