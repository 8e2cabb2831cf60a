"""`ibtui reproduce`: its claims, its refusals, and every run it would make accepted at every scale."""
from __future__ import annotations

import pytest

from ibtui.reproduce.report import claim_names
from ibtui.reproduce.runner import RUNS, SCALES
from ibtui.resources import estimate
from ibtui.scenario import load_scenario
from tests.conftest import cli


def test_list_names_every_claim_module():
    from pathlib import Path

    import ibtui.reproduce.claims as pkg

    res = cli("reproduce", "--list")
    assert res.returncode == 0
    modules = sorted(p.stem for p in Path(pkg.__file__).parent.glob("*.py") if p.stem != "__init__")
    assert sorted(claim_names()) == modules
    listed = [line.split()[0] for line in res.stdout.splitlines()]
    assert listed == claim_names()
    assert "mnist_cnn_noisy" in listed


@pytest.mark.parametrize("args, word", [(["--only", "nope"], "--only nope"), (["--scale", "huge"], "--scale huge")])
def test_refuses_unknown_claim_or_scale(args, word):
    res = cli("reproduce", *args, "--report-only")
    assert res.returncode == 2
    assert word in res.stderr


@pytest.mark.parametrize("scale", SCALES)
def test_every_run_is_accepted_at_every_scale(scale):
    """What `ibtui show` and the memory estimate would say of each run: the paper-scale commands are valid even
    though none runs here."""
    for spec in RUNS.values():
        sets = spec.settings(scale)
        res = cli("show", spec.scenario, *[a for s in sets for a in ("--set", s)])
        assert res.returncode == 0, f"{spec.name} at {scale}: {res.stderr}"
        need, what = estimate(load_scenario(spec.scenario, sets))
        assert need > 0 and what, f"{spec.name} at {scale}"


# mnist_plane's extra settings: its rule compares mean curves, so no verdict reads their seeds
NO_SEED_VERDICT = {"mnist_mi_bin30_kde0.1", "mnist_mi_bin4_kde0.01"}


def test_every_verdict_has_the_seeds_it_needs_at_cpu_and_medium():
    """A verdict needs MIN_SEEDS seeds (issue 32), so both scales give them; medium is larger than cpu in seeds,
    epochs or data (not always in seeds: doubling them everywhere would take medium past its ~4 h of CPU)."""
    from ibtui.reproduce.stats import MIN_SEEDS

    for spec in RUNS.values():
        cpu, med = spec.sets["cpu"], spec.sets["medium"]
        if "run.seeds" not in cpu:
            continue
        if spec.name not in NO_SEED_VERDICT:
            assert cpu["run.seeds"] >= MIN_SEEDS and med["run.seeds"] >= MIN_SEEDS, spec.name
        assert med["run.seeds"] >= cpu["run.seeds"], spec.name
        larger = (med["run.seeds"] > cpu["run.seeds"] or med.get("run.epochs", 0) > cpu.get("run.epochs", 0)
                  or spec.data["medium"] != spec.data["cpu"])
        assert larger, spec.name
