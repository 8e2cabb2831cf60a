"""A checkpoint is checked against its schema before anything is touched (issue 34, item 3).

`ibtui resume` cuts the export back to the checkpoint's `csv_bytes` and continues training from its state, so a
crafted field must never cut the export, crash torch (a wrongly shaped Adam state segfaults its fused kernel) or give
a wrong export that says it finished. Each case below mutates one field of a real checkpoint (a run stopped at
epoch 5 by SIGTERM, as `kill` would) and resumes it: one sentence, exit 2, every file byte for byte as before. The
fuzz walks every field of the checkpoint with wrong types, shapes, dtypes and ranges.
"""
from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal

import pytest
import torch

from conftest import cli
from ibtui.sinks.checkpoint import CheckpointSink
from ibtui.sinks.csv import checkpoint_path

ARGS = ["szt_tanh", "--set", "run.seeds=2", "--set", "run.epochs=12", "--set", "measure.snapshots=4",
        "--set", "measure.kde.points=256", "--device", "cpu", "-q", "--set", "run.checkpoint_every=0.001"]
HEADER = len(b"run,sweep,seed,epoch,step,layer,quantity,estimator,value\n")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A run stopped after 5 epochs with its checkpoint (the folder, made once for the module)."""
    folder = tmp_path_factory.mktemp("stopped")
    real, seen = CheckpointSink.progress, {"n": 0}

    def progress(self, p):
        real(self, p)
        seen["n"] += 1
        if seen["n"] == 5:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(CheckpointSink, "progress", progress)
        res = cli(*ARGS, "-o", folder / "run.csv")
    assert res.returncode == 143, res.stderr
    ck = torch.load(checkpoint_path(folder / "run.csv"), weights_only=True)
    assert ck["epoch"] == 5 and ck["runner"]["engine"]["optimizer"]["state"]  # Adam has stepped
    return folder


@pytest.fixture
def stopped(pristine, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(pristine, folder)
    return folder, folder / "run.csv"


def digest(folder) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def refused(folder, out, *words) -> str:
    before = digest(folder)
    res = cli("resume", out, "--headless", "-q")
    err = res.stderr.strip()
    assert res.returncode == 2, (res.returncode, err[-2000:])
    assert err.startswith("ibtui: ") and "\n" not in err and "Traceback" not in err, err
    for w in words:
        assert w in err, (w, err)
    assert digest(folder) == before  # nothing cut, nothing replaced, no lock or temporary file left
    return err


def mutate(out, fn) -> None:
    path = checkpoint_path(out)
    ck = torch.load(path, weights_only=True)
    fn(ck)
    torch.save(ck, path)


def engine(ck) -> dict:
    return ck["runner"]["engine"]


# ------------------------------------------------------------------------------ the cases, one a kind

def _set(**kw):
    return lambda ck: ck.update(kw)


@pytest.mark.parametrize("fn,words", [
    (_set(csv_bytes=0), ["csv_bytes = 0"]),  # issue: truncated the export to 0 bytes, then refused
    (lambda ck: ck.update(csv_bytes=ck["csv_bytes"] - 7), ["middle of a row"]),  # issue: exit 0, a wrong export
    (_set(epoch=10 ** 6), ["epoch = 1000000", "outside"]),  # issue: exit 0, finished: true
    (lambda ck: ck["runner"].update(point=-1), ["runner.point = -1"]),  # issue: a negative sweep point ran
    (lambda ck: engine(ck)["model"].update({"weights.0": engine(ck)["model"]["weights.0"].to(torch.int32)}),
     ["weights.0", "torch.int32"]),  # issue: int32 weights, exit 0
    (lambda ck: engine(ck)["optimizer"]["state"][0].update(exp_avg=torch.zeros(3, 3)),
     ["state[0].exp_avg", "shape"]),  # issue: segfault (exit 139) in the fused Adam, after the CSV was cut
    (lambda ck: engine(ck).update(alive=torch.ones(3, dtype=torch.bool)), ["alive", "shape"]),
    (lambda ck: engine(ck).update(alive=[True, True]), ["alive", "not a tensor"]),
    (_set(rows="x"), ["rows", "not an integer"]),
    (lambda ck: ck.pop("runner"), ["lacks runner"]),
], ids=["csv-bytes-0", "csv-bytes-mid-row", "epoch-beyond", "sweep-point-negative", "weights-int32",
        "adam-state-shape", "alive-length", "alive-type", "rows-text", "runner-missing"])
def test_a_crafted_field_is_refused_before_anything_is_touched(stopped, fn, words):
    folder, out = stopped
    mutate(out, fn)
    refused(folder, out, "nothing was changed", *words)


def test_a_replaced_export_header_is_refused_before_the_cut(stopped):
    folder, out = stopped
    data = out.read_bytes()
    out.write_bytes(b"x" * (HEADER - 1) + b"\n" + data[HEADER:])  # same length: only the check of the header sees it
    refused(folder, out, "header is not the one ibtui writes")


@pytest.mark.parametrize("content", [b"just some notes\n", b'{"format": "ibtui-checkpoint-v1"}', b""],
                         ids=["text", "json", "empty"])
def test_a_text_file_as_checkpoint_is_one_sentence(stopped, content):
    folder, out = stopped
    checkpoint_path(out).write_bytes(content)
    refused(folder, out, "not a readable ibtui checkpoint")


def test_a_valid_checkpoint_still_resumes(stopped):
    """The schema refuses nothing a real run writes: the stopped run resumes and finishes."""
    _, out = stopped
    res = cli("resume", out, "--headless", "-q")
    assert res.returncode == 0, res.stderr
    assert not checkpoint_path(out).exists()


# ------------------------------------------------------------------------------ the fuzz: every field

def _paths(value, path=()):
    """Every (path, value) in the checkpoint, containers included."""
    yield path, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*path, k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _paths(v, (*path, i))


def _wrong(value, rng: random.Random) -> list:
    """Values of the wrong type, dtype, shape or range for a field holding `value`."""
    if isinstance(value, torch.Tensor):
        out = [value.tolist() if value.dim() else float(value), "x",
               value.to(torch.int32 if value.is_floating_point() else torch.float64)]
        if value.dim():
            out += [value[..., :-1] if value.shape[-1] > 1 else torch.cat([value, value], -1),
                    value.reshape(-1, 1) if value.dim() != 2 else value.reshape(-1)]
        else:
            out += [value.reshape(1, 1)]
        if value.dtype == torch.float32 and value.dim() == 0:  # Adam's step count
            out += [torch.tensor(-1.0), torch.tensor(float("nan"))]
        return out
    if isinstance(value, bool):
        return ["yes", 2]
    if isinstance(value, int):
        return [-1, 10 ** 9, str(value), float(value) + 0.5, None, True]
    if isinstance(value, float):
        return ["x", float("nan"), -1.0, None]
    if isinstance(value, str):
        return [1, None, b"x"]
    if value is None:
        return [rng.choice([1.0, "x", [float("inf")]])]
    if isinstance(value, (list, tuple)):
        return ["x", type(value)(list(value)[:-1]) if value else [1.0, "x"], {}]
    if isinstance(value, dict):
        return ["x", []]
    return ["x"]


def _with(obj, path, new):
    """A copy of `obj` with the item at `path` replaced by `new` (or removed, new = DELETE): the containers along
    the path are copied, everything else shared (the checks only read)."""
    k, rest = path[0], path[1:]
    copy_ = list(obj) if isinstance(obj, (list, tuple)) else dict(obj)
    if rest:
        copy_[k] = _with(obj[k], rest, new)
    elif new is DELETE:
        del copy_[k]
    else:
        copy_[k] = new
    return tuple(copy_) if isinstance(obj, tuple) else copy_


DELETE = object()


def mutations(ck, rng):
    """(path, new value) for every field: wrong types, dtypes, shapes and ranges, and deleted."""
    for path, value in _paths(ck):
        if not path or path == ("saved",):  # when it was saved: text the run does not depend on
            continue
        for new in _wrong(value, rng):
            yield path, new
        yield path, DELETE


def mutated(original, path, new):
    return _with(original, path, new)


GROWS = ("_y", "_slope", "_level", "_lev_var")


def well_formed(path, new) -> bool:
    """Mutations that leave a state the run can continue from (so the schema accepts them): no window watched yet,
    a growing table's spare columns trimmed (it keeps one a snapshot), a kept copy of the weights dropped from the
    bound's buffer (it then uses the nearest one it kept), no KDE path (a checkpoint from before measure.kde.path:
    it resumes with the rule of then)."""
    return ((path[-1] == "_window" and new is None) or (path == ("runner", "engine", "kde_path") and new is DELETE)
            or (path[-1] in GROWS and isinstance(new, torch.Tensor) and new.dtype == torch.float64 and new.dim() == 2)
            or (path[-1] == "_buffer" and isinstance(new, list)) or (path[-2:-1] == ("_buffer",) and new is DELETE))


def run_checks(out, eng):
    """The two checks `ibtui resume` makes before touching anything, in-process: the fields against the scenario
    and the export (cli._resumable_run), then the state against an engine of that scenario."""
    from ibtui.cli import _resumable_run
    from ibtui.engine.checkpoint import check_state

    _, ck = _resumable_run(out)
    check_state(eng, ck["runner"]["engine"])


def fuzz_in_process(folder, out, sample: int | None):
    """The mutations through the checks of `ibtui resume`, the checkpoint handed over as `checkpoint.load` read it
    (reading ~1,000 files through torch's safe unpickler would take minutes; test_fuzz_through_the_cli reads them)."""
    from ibtui.cli import _resumable_run
    from ibtui.engine import checkpoint
    from ibtui.engine.sweep import SweepRunner
    from ibtui.errors import IbtuiError

    path = checkpoint_path(out)
    original = torch.load(path, weights_only=True)
    eng = SweepRunner(_resumable_run(out)[0]).current
    cases = list(mutations(original, random.Random(34)))
    if sample is not None:
        cases = random.Random(3434).sample(cases, sample)
    before = digest(folder)
    counts, wrong = {"mutations": 0, "refused": 0, "well-formed, accepted": 0}, []
    for where, new in cases:
        ck = mutated(original, where, new)
        counts["mutations"] += 1
        try:
            with pytest.MonkeyPatch.context() as m:
                m.setattr(checkpoint, "load", lambda _: ck)
                run_checks(out, eng)
        except IbtuiError as exc:
            assert "\n" not in str(exc)
            counts["refused"] += 1
        else:
            if well_formed(where, new):
                counts["well-formed, accepted"] += 1
            else:
                wrong.append((where, repr(new)[:60]))
    assert digest(folder) == before  # the checks read the export and write nothing
    return counts, wrong


def test_fuzz_checkpoint_field_mutations(stopped, capsys):
    """A seeded sample of the mutations below (every field of the checkpoint with wrong types, dtypes, shapes and
    ranges, or deleted): each is refused with an IbtuiError by the checks made before anything is touched, unless
    it leaves a state the run can continue from (`well_formed`). The whole set is in the slow set."""
    counts, wrong = fuzz_in_process(*stopped, sample=80)
    with capsys.disabled():
        print("\ncheckpoint fuzz counts (sample)", counts)
    assert not wrong, wrong
    assert counts["refused"] >= 70


@pytest.mark.slow  # ~1,100 mutations, 40 ms of CPU each
def test_fuzz_every_checkpoint_field(stopped, capsys):
    counts, wrong = fuzz_in_process(*stopped, sample=None)
    with capsys.disabled():
        print("\ncheckpoint fuzz counts (all)", counts)
    assert not wrong, wrong
    assert counts["mutations"] > 1000


@pytest.mark.slow  # ~250 resumes through the command, 0.3 s each
def test_fuzz_through_the_cli(stopped, tmp_path, capsys):
    """A sample of the mutations through `ibtui resume`: each refused one is one sentence, exit 2, every file as
    before; each well-formed one resumes to the end (exit 0)."""
    folder, out = stopped
    path = checkpoint_path(out)
    original = torch.load(path, weights_only=True)
    keep = tmp_path / "pristine"
    shutil.copytree(folder, keep)
    cases = random.Random(343434).sample(list(mutations(original, random.Random(34))), 250)
    counts, failures = {"mutations": 0, "refused": 0, "well-formed, resumed": 0}, []
    for where, new in cases:
        torch.save(mutated(original, where, new), path)
        counts["mutations"] += 1
        before = digest(folder)
        res = cli("resume", out, "--headless", "-q")
        err = res.stderr.strip()
        if well_formed(where, new):
            counts["well-formed, resumed"] += res.returncode == 0
            if res.returncode != 0:
                failures.append((where, repr(new)[:60], res.returncode, err[-300:]))
            shutil.rmtree(folder)
            shutil.copytree(keep, folder)
        elif (res.returncode == 2 and err.startswith("ibtui: ") and "\n" not in err and "Traceback" not in err
                and digest(folder) == before):
            counts["refused"] += 1
        else:
            failures.append((where, repr(new)[:60], res.returncode, err[-300:]))
            shutil.rmtree(folder)
            shutil.copytree(keep, folder)
    with capsys.disabled():
        print("\ncheckpoint fuzz counts (CLI)", counts)
    assert not failures, failures
