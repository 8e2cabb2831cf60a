"""measure.kde.path = auto: the KDE probe times the paths this machine has for its layers up to 512 wide (the
compiled tile kernel, PyTorch's tile sums, fused attention where accurate) once per machine and shapes, takes the
faster, says so in the run's notes, records it in the run info (the sidecar) and the checkpoint, and a resumed run
keeps the path it began with."""
from __future__ import annotations

import dataclasses
import time

import pytest
import torch

import ibtui.engine.probes.kde as kde_probe
from ibtui.engine import checkpoint
from ibtui.engine.trainer import Engine
from ibtui.measures import native
from ibtui.measures.kde import attention_agrees
from ibtui.reproduce.runner import RunSpec
from ibtui.scenario import ScenarioError, parse_scenario
from ibtui.sinks.replay import info_from_meta

HAS_COMPILER = native.tile_sums() is not None
ATTENTION = attention_agrees(torch.device("cpu"), 1e-3)
SLOW_S = 0.1  # far above any real path's cost at these shapes (~20 ms)


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """A cache folder of this test's own: no record of an earlier run."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("IBTUI_CFLAGS", raising=False)
    return tmp_path / "cache" / "ibtui"


def engine(path: str = "auto") -> Engine:
    return Engine(parse_scenario(
        '[run]\nepochs = 2\nseeds = 2\ndevice = "cpu"\ncompiled_step = false\n'
        '[measure]\nsnapshots = 1\nestimators = ["kde"]\n[measure.dynamics]\nenabled = false\n'
        f'[measure.kde]\npoints = 256\npath = "{path}"\n'))


def probe_of(e: Engine) -> kde_probe.KdeProbe:
    return next(p for p in e.estimators if isinstance(p, kde_probe.KdeProbe))


def only_fast(monkeypatch, fast: str, calls: dict | None = None) -> None:
    """Every KDE path but `fast` SLOW_S slower than it is (and each call counted in `calls`)."""
    real_tiled, real_attention = kde_probe.kde_mi_tiled, kde_probe.kde_mi_attention

    def note(name):
        if calls is not None:
            calls[name] = calls.get(name, 0) + 1
        if name != fast:
            time.sleep(SLOW_S)

    def tiled(*a, compiled=True, **kw):
        note("compiled" if compiled else "pytorch")
        return real_tiled(*a, compiled=compiled, **kw)

    def attention(*a, **kw):
        note("attention")
        return real_attention(*a, **kw)

    monkeypatch.setattr(kde_probe, "kde_mi_tiled", tiled)
    monkeypatch.setattr(kde_probe, "kde_mi_attention", attention)


FAST = [pytest.param("compiled", marks=pytest.mark.skipif(not HAS_COMPILER, reason="no working C compiler")),
        "pytorch",
        pytest.param("attention", marks=pytest.mark.skipif(not ATTENTION, reason="attention inaccurate here"))]


def test_the_setting_takes_auto_and_the_three_paths_only():
    assert parse_scenario("").measure.kde.path == "auto"
    for value in ("compiled", "pytorch", "attention"):
        assert parse_scenario(f'[measure.kde]\npath = "{value}"\n').measure.kde.path == value
    for bad in ('"tiles"', '"pairwise"', "true"):
        with pytest.raises(ScenarioError, match="path"):
            parse_scenario(f"[measure.kde]\npath = {bad}\n")


@pytest.mark.parametrize("fast", FAST)
def test_auto_never_takes_a_slower_path_and_says_which_and_why(monkeypatch, fast):
    only_fast(monkeypatch, fast)
    e = engine()
    probe = probe_of(e)
    assert probe.kde_path == fast == e.info.kde_path
    assert probe.choice.timed_now and all(s >= SLOW_S for p, s in probe.choice.seconds.items() if p != fast)
    assert probe.choice.seconds[fast] < min(s for p, s in probe.choice.seconds.items() if p != fast)
    assert set(probe.choice.seconds) == {*(["compiled"] if HAS_COMPILER else []), "pytorch",
                                         *(["attention"] if ATTENTION else [])}
    note = next(n for n in e.info.notes if n.startswith("kde: layers up to"))
    assert "measure.kde.path = auto" in note and "ms" in note and "timed now" in note
    words = {"compiled": "compiled kernel", "pytorch": "(PyTorch;", "attention": "by fused attention"}[fast]
    assert all(words in d for d in e.info.estimator_settings.values())
    # the sidecar's run info carries the path, and reads back
    assert info_from_meta({"run_info": dataclasses.asdict(e.info)}).kde_path == fast


def test_the_choice_is_read_back_not_timed_again(monkeypatch):
    calls: dict = {}
    only_fast(monkeypatch, "pytorch", calls)
    first = probe_of(engine())
    assert first.kde_path == "pytorch" and first.choice.timed_now and calls["pytorch"] >= 2
    calls.clear()
    again = probe_of(engine())
    assert again.kde_path == "pytorch" and not again.choice.timed_now and calls == {}
    assert "timed on this machine earlier" in again.notes[-1]


@pytest.mark.parametrize("fast", FAST)
def test_auto_measures_the_numbers_of_the_path_it_names(monkeypatch, fast):
    with monkeypatch.context() as m:
        only_fast(m, fast)
        auto = probe_of(engine())
    pinned = probe_of(engine(fast))
    assert auto.kde_path == pinned.kde_path == fast and pinned.choice is None
    g = torch.Generator().manual_seed(3)
    layers = [torch.tanh(torch.randn(2, 256, d, generator=g)) for d in (10, 7, 5)]
    labels = torch.randint(0, 2, (256,), generator=g)
    for a, b in zip(auto._mi(layers, labels), pinned._mi(layers, labels)):
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_forced_path_is_not_timed(monkeypatch):
    calls: dict = {}
    only_fast(monkeypatch, "attention", calls)
    e = engine("pytorch")
    assert e.info.kde_path == "pytorch" and probe_of(e).choice is None and calls == {}
    assert any("measure.kde.path = pytorch" in n for n in e.info.notes)


def test_a_resumed_run_keeps_the_path_it_began_with(monkeypatch, tmp_path):
    with monkeypatch.context() as m:
        only_fast(m, "pytorch")
        first = engine()
    assert first.info.kde_path == "pytorch"
    first.train_epoch()
    state = first.state_dict()
    assert state["kde_path"] == "pytorch"
    other = "compiled" if HAS_COMPILER else "attention" if ATTENTION else None
    if other is None:
        pytest.skip("only one KDE path on this machine")
    with monkeypatch.context() as m:
        m.setenv("XDG_CACHE_HOME", str(tmp_path / "elsewhere"))  # a fresh choice, the other way
        only_fast(m, other)
        again = engine()
    assert again.info.kde_path == other
    again.load_state_dict(state)
    assert again.info.kde_path == "pytorch" == probe_of(again).kde_path
    assert any("kept on resume" in n for n in again.info.notes)
    assert again.state_dict()["kde_path"] == "pytorch"


def test_a_checkpoint_from_before_the_setting_resumes_with_the_rule_then(monkeypatch):
    with monkeypatch.context() as m:
        only_fast(m, "pytorch")
        first = engine()
    first.train_epoch()
    state = first.state_dict()
    del state["kde_path"]
    again = engine()
    again.load_state_dict(state)
    assert again.info.kde_path == ("compiled" if HAS_COMPILER else "pytorch")


def test_a_crafted_path_is_refused():
    e = engine("pytorch")
    state = e.state_dict()
    state["kde_path"] = "elsewhere"
    with pytest.raises(checkpoint.Bad, match="kde_path"):
        e.load_state_dict(state)


def test_the_reproduction_runs_pin_the_path_they_were_made_with():
    spec = RunSpec("szt_tanh", "szt_tanh", {"cpu": {"run.seeds": 5}, "medium": {}, "full": {}})
    for scale in ("cpu", "medium"):
        assert "measure.kde.path=compiled" in spec.settings(scale)
    assert not any(s.startswith("measure.kde.path") for s in spec.settings("full"))
