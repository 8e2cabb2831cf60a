"""The per-machine choice between two paths that compute the same numbers (ibtui.compiled.choose) and the
training step's `run.compiled_step = auto`: the slower path is never taken, the record is keyed by the flags and
the shapes, and a resumed run keeps the step it began with."""
from __future__ import annotations

import json
import os
import time

import pytest
import torch

from ibtui import compiled
from ibtui.engine.backends import compiled_step
from ibtui.engine.trainer import Engine
from ibtui.models.mlp import BatchedMLP
from ibtui.scenario import ScenarioError, parse_scenario

needs_compiler = pytest.mark.skipif(compiled_step.library() is None, reason="no working C compiler")


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """A cache folder of this test's own: no record of an earlier run."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("IBTUI_CFLAGS", raising=False)
    return tmp_path / "cache" / "ibtui"


def counting(seconds: float, calls: dict, name: str):
    def call():
        calls[name] = calls.get(name, 0) + 1
        time.sleep(seconds)
    return call


def test_the_slower_path_is_never_chosen_and_the_record_is_read_back(own_cache):
    calls: dict = {}
    for order in (("slow", "fast"), ("fast", "slow")):  # whichever comes first
        paths = {name: counting(0.004 if name == "slow" else 0.0, calls, name) for name in order}
        choice = compiled.choose("test-" + order[0], {"n": 1}, paths, budget_s=0.2)
        assert choice.path == "fast" and choice.timed_now
        assert choice.seconds["slow"] >= 0.004 > choice.seconds["fast"]
    record = json.loads((own_cache / compiled.CHOICES).read_text())
    assert sorted(v["path"] for v in record.values()) == ["fast", "fast"]
    calls.clear()
    again = compiled.choose("test-slow", {"n": 1}, {n: counting(0.0, calls, n) for n in ("slow", "fast")})
    assert again.path == "fast" and not again.timed_now and calls == {}  # read, not timed again
    assert "timed on this machine earlier" in again.describe()


def test_the_key_holds_the_flags_the_shapes_and_the_source(own_cache, monkeypatch):
    base = compiled.choice_key("training_step", {"sizes": [12, 10, 2]})
    assert compiled.choice_key("training_step", {"sizes": [12, 10, 2]}) == base
    assert compiled.choice_key("training_step", {"sizes": [12, 11, 2]}) != base
    flags = compiled.source_key("ibtui.engine.backends", compiled_step.SOURCE, compiled_step.FLAG_SETS)
    assert compiled.source_key("ibtui.engine.backends", compiled_step.SOURCE, [["-O2"]]) != flags
    monkeypatch.setenv("IBTUI_CFLAGS", "-march=x86-64-v3")
    assert compiled.choice_key("training_step", {"sizes": [12, 10, 2]}) != base
    assert compiled.source_key("ibtui.engine.backends", compiled_step.SOURCE, compiled_step.FLAG_SETS) != flags
    calls: dict = {}  # another build's choice is timed again, not read from the native build's record
    monkeypatch.delenv("IBTUI_CFLAGS")
    compiled.choose("k", {}, {"a": counting(0, calls, "a"), "b": counting(0.002, calls, "b")}, budget_s=0.1)
    monkeypatch.setenv("IBTUI_CFLAGS", "-march=x86-64-v3")
    calls.clear()
    assert compiled.choose("k", {}, {"a": counting(0, calls, "a"), "b": counting(0.002, calls, "b")},
                           budget_s=0.1).timed_now and calls["a"] >= 2


def test_a_record_others_could_write_is_not_read(own_cache):
    compiled.choose("k", {}, {"a": lambda: None, "b": lambda: time.sleep(0.002)}, budget_s=0.1)
    path = own_cache / compiled.CHOICES
    record = json.loads(path.read_text())
    for v in record.values():
        v["path"] = "b"  # as if another user had planted the slower path
    path.write_text(json.dumps(record))
    os.chmod(path, 0o666)
    assert compiled.choose("k", {}, {"a": lambda: None, "b": lambda: time.sleep(0.002)}, budget_s=0.1).path == "a"


def test_compiled_step_takes_auto_true_false_and_nothing_else():
    def sc(value):
        return parse_scenario(f"[run]\ncompiled_step = {value}\n")

    assert parse_scenario("").run.compiled_step == "auto"
    assert sc('"auto"').run.compiled_step == "auto"
    assert sc("true").run.compiled_step is True and sc("false").run.compiled_step is False
    for bad in ('"fast"', "1", '"true"'):
        with pytest.raises(ScenarioError, match="compiled_step"):
            sc(bad)


def szt(extra: str = "") -> Engine:
    return Engine(parse_scenario('[run]\nepochs = 3\nseeds = 2\ndevice = "cpu"\n' + extra +
                                 '[measure]\nsnapshots = 1\nestimators = []\n[measure.dynamics]\nenabled = false\n'))


def slowed(monkeypatch, which: str) -> None:
    """Make one training step 5 ms slower than it is."""
    if which == "compiled":
        real = compiled_step.CompiledStep.__call__

        def slow(self, *a, **kw):
            time.sleep(0.005)
            return real(self, *a, **kw)

        monkeypatch.setattr(compiled_step.CompiledStep, "__call__", slow)
    else:
        real = BatchedMLP.train_grads

        def slow(self, *a, **kw):
            time.sleep(0.005)
            return real(self, *a, **kw)

        monkeypatch.setattr(BatchedMLP, "train_grads", slow)


@needs_compiler
@pytest.mark.parametrize("slow, chosen", [("compiled", "pytorch"), ("pytorch", "compiled")])
def test_auto_trains_with_the_faster_step_and_says_so(monkeypatch, slow, chosen):
    slowed(monkeypatch, slow)
    engine = szt()
    assert engine.info.training_step == chosen and (engine.backend.compiled is not None) == (chosen == "compiled")
    note = next(n for n in engine.info.notes if n.startswith("training:"))
    assert "auto" in note and "ms" in note and "timed now" in note
    assert all(p.grad is None for p in engine.model.parameters())  # the timing left nothing behind


@needs_compiler
def test_the_timing_changes_no_number():
    """auto's timing runs both steps on the first batch; the run's parameters after training are those of the
    same step chosen outright."""
    auto = szt()
    pinned = szt(f"compiled_step = {'true' if auto.info.training_step == 'compiled' else 'false'}\n")
    for _ in range(2):
        auto.train_epoch()
        pinned.train_epoch()
    for a, b in zip(auto.model.parameters(), pinned.model.parameters()):
        assert torch.equal(a, b)


@needs_compiler
def test_a_resumed_run_keeps_the_step_it_began_with(monkeypatch, tmp_path):
    with monkeypatch.context() as m:
        slowed(m, "pytorch")
        first = szt()
    assert first.info.training_step == "compiled"
    first.train_epoch()
    state = first.state_dict()
    with monkeypatch.context() as m:
        m.setenv("XDG_CACHE_HOME", str(tmp_path / "elsewhere"))  # a fresh choice, the other way
        slowed(m, "compiled")
        again = szt()
    assert again.info.training_step == "pytorch"
    again.load_state_dict(state)
    assert again.info.training_step == "compiled" and again.backend.compiled is not None
    first.train_epoch()
    again.train_epoch()
    for a, b in zip(first.model.parameters(), again.model.parameters()):
        assert torch.equal(a, b)
