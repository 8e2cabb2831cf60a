"""The app on a real run with the wide-layer estimators: `e` cycles to them, the `?` help says their definitions
(the run info's estimator settings, which the sidecar records too)."""
from __future__ import annotations

import pytest

pytest.importorskip("textual")

from tui_helpers import wait_for  # noqa: E402

from ibtui.engine.trainer import Engine  # noqa: E402
from ibtui.scenario import parse_scenario  # noqa: E402
from ibtui.tui.app import IbtuiApp  # noqa: E402
from ibtui.tui.help import help_text  # noqa: E402

SZT = ('[run]\nseeds = 1\nepochs = 3\ndevice = "cpu"\n[measure]\nsnapshots = 3\n'
       'estimators = ["binning", "renyi", "ksg"]\n[measure.renyi]\npoints = 64\n[measure.ksg]\npoints = 64\n')


@pytest.mark.slow  # a real engine behind the app: ~15 s on a shared 2-core machine
async def test_e_cycles_to_renyi_and_ksg_on_a_real_run():
    app = IbtuiApp(Engine(parse_scenario(SZT)), fps=10)
    async with app.run_test(size=(100, 30)) as pilot:
        plane = app.query_one("#plane")
        await wait_for(pilot, lambda: plane.message is None, timeout=60, what="plane data")
        assert "estimator bin30" in app.query_one("#status").text
        await pilot.press("e")
        assert app.vs.estimator == "renyi" and "estimator renyi" in app.query_one("#status").text
        assert "information plane · renyi" in plane.text  # its long definition is on the ? screen
        await pilot.press("e")
        assert app.vs.estimator == "ksg" and "information plane · ksg" in plane.text
        await pilot.press("e")
        assert app.vs.estimator == "bin30"
        await pilot.press("q")


def test_help_lists_their_definitions():
    eng = Engine(parse_scenario(SZT))
    table = help_text([], [], info=eng.info)
    cells = [str(c) for col in table.columns for c in col._cells]
    assert any("α = 1.01" in c and "σ = 0.8·σ̂·√d·n^(−1/(4+d))" in c for c in cells)
    assert any("k = 3" in c and "max-norm" in c for c in cells)


def test_every_scenario_estimator_has_a_definition_in_the_help():
    from ibtui import quantities, scenario

    assert set(quantities.ESTIMATORS) == set(scenario.ESTIMATORS)
    table = help_text([], [])
    text = " ".join(str(c) for col in table.columns for c in col._cells)
    assert "Giraldo, Rao & Principe 2014" in text and "Kraskov et al. 2004" in text
