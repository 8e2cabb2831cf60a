"""The compiled training step (ibtui.engine.backends.compiled_step, mlp_step.c) against float64 autograd, and its
promises: a seed's bits do not depend on the seeds beside it nor on the vector instructions it was built for."""
import copy
from importlib import resources

import pytest
import torch
import torch.nn.functional as F

from ibtui import compiled
from ibtui.engine.backends import compiled_step
from ibtui.engine.trainer import Engine
from ibtui.models.mlp import BatchedMLP
from ibtui.scenario import parse_scenario

SZT_SIZES = [12, 10, 7, 5, 4, 3, 2]

needs_compiler = pytest.mark.skipif(compiled_step.library() is None, reason="no working C compiler")


def problem(sizes, activation, n_seeds=3, n=700, seed=0):
    """A model, every point's inputs feature-major [d_in, N], labels [N] and each seed's epoch order [S, n], as
    the engine's back end holds them."""
    g = torch.Generator().manual_seed(seed)
    model = BatchedMLP(list(range(n_seeds)), sizes, activation)
    with torch.no_grad():  # biases away from zero, so that they are tested too
        for b in model.biases:
            b.copy_(0.3 * torch.randn(b.shape, generator=g))
    n_points = n + 100
    x = torch.randn(sizes[0], n_points, generator=g)
    y = torch.randint(0, sizes[-1], (n_points,), generator=g)
    order = torch.stack([torch.randperm(n_points, generator=g)[:n] for _ in range(n_seeds)])
    return model, x, y, order


def compiled_grads(model, x, y, order, start, stop, beta=0.0, noise=None, lib=None):
    step = compiled_step.CompiledStep(model, lib or compiled_step.library())
    step(x, y, order, start, stop, beta, noise)
    return [p.grad.clone() for p in step.params]


def autograd_grads(model, x, y, order, start, stop, beta=0.0, noise=None):
    """float64 autograd of every seed's own mean cross-entropy (summed over seeds: their gradients do not mix)."""
    m64 = copy.deepcopy(model).double()
    batch = order[:, start:stop]
    xt = x[:, batch].permute(1, 0, 2).double()  # [S, d_in, B]
    logits, _ = m64.forward_t(xt, beta, (lambda layer, s: noise[layer].double()) if noise else None)
    F.cross_entropy(logits, y[batch], reduction="none").mean(dim=1).sum().backward()
    return [p.grad for p in [*m64.weights, *m64.biases]]


def assert_close_to(got, exact, tol=1e-5):
    for g, e in zip(got, exact):
        scale = float(e.abs().max()) + 1e-30
        assert float((g.double() - e).abs().max()) / scale < tol


@needs_compiler
@pytest.mark.parametrize("activation", ["tanh", "relu", "linear"])
@pytest.mark.parametrize("start,stop", [(0, 512), (512, 700), (100, 104)])  # full chunks, a ragged tail, 4 points
def test_gradients_equal_float64_autograd(activation, start, stop):
    model, x, y, order = problem(SZT_SIZES, activation)
    got = compiled_grads(model, x, y, order, start, stop)
    assert_close_to(got, autograd_grads(model, x, y, order, start, stop))
    assert all(float(g.abs().max()) > 0 for g in got)  # every parameter has a gradient


@needs_compiler
def test_many_classes_and_noise():
    """Ten classes (the softmax's general case) and a noisy network: T_l = S_l + β ε, ε given."""
    sizes = [20, 16, 12, 10]
    model, x, y, order = problem(sizes, "tanh", seed=1)
    g = torch.Generator().manual_seed(2)
    noise = [torch.randn(3, w, 300, generator=g) for w in sizes[1:-1]]
    got = compiled_grads(model, x, y, order, 200, 500, beta=0.1, noise=noise)
    assert_close_to(got, autograd_grads(model, x, y, order, 200, 500, beta=0.1, noise=noise))
    noiseless = compiled_grads(model, x, y, order, 200, 500)
    assert not torch.equal(got[0], noiseless[0])  # the noise was used


@needs_compiler
def test_a_seed_gives_the_same_bits_alone_or_beside_others():
    model, x, y, order = problem(SZT_SIZES, "tanh", n_seeds=4)
    together = compiled_grads(model, x, y, order, 0, 512)
    alone = BatchedMLP([2], SZT_SIZES, "tanh")
    with torch.no_grad():
        for mine, theirs in zip([*alone.weights, *alone.biases], [*model.weights, *model.biases]):
            mine.copy_(theirs[2:3])
    single = compiled_grads(alone, x, y, order[2:3].contiguous(), 0, 512)
    for a, b in zip(single, together):
        assert torch.equal(a[0], b[2])


def assert_same_bits_over_builds(tmp_path, monkeypatch, targets):
    """Builds the step with -march=native and with each of `targets` in its place ("" for no target flag), each
    picking its own vector width and blocking, and checks that all give identical gradients: fixed-order sums and
    IEEE arithmetic, which is why a run's numbers are the same on every machine with a compiler."""
    import platform

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("IBTUI_CFLAGS", raising=False)
    source = (resources.files("ibtui.engine.backends") / compiled_step.SOURCE).read_text()
    native_flags = compiled_step.FLAG_SETS[0]
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    flag_sets = [native_flags] + [[f for f in native_flags if f != "-march=native"] if not t else
                                  [f if f != "-march=native" else f"-march={t}" for f in native_flags]
                                  for t in targets if x86 or not t]
    builds = [compiled.load("mlp_step", source, [flags]) for flags in flag_sets]
    if any(lib is None for lib in builds):
        pytest.skip("the compiler refused one of the flag sets")
    assert len(list((tmp_path / "ibtui").glob("mlp_step-*.so"))) == len(builds)  # one library a flag set
    cases = [([12, 10, 7, 5, 4, 3, 2], "tanh", 0.0), ([12, 10, 7, 5, 4, 3, 2], "relu", 0.0),
             ([12, 33, 17, 6, 2], "linear", 0.0), ([20, 16, 12, 10], "tanh", 0.1)]  # ragged blocks, noise
    for sizes, activation, beta in cases:
        model, x, y, order = problem(sizes, activation, seed=3)
        g = torch.Generator().manual_seed(4)
        noise = [torch.randn(3, w, 589, generator=g) for w in sizes[1:-1]] if beta else None
        first, *others = (compiled_grads(model, x, y, order, 64, 653, beta, noise, lib=compiled_step.bind(lib))
                          for lib in builds)
        for other in others:
            for a, b in zip(first, other):
                assert torch.equal(a, b)


@pytest.mark.slow  # over 2 s: keeps the README's fast set under 3 minutes on 2 cores
@needs_compiler
def test_the_same_bits_whatever_vector_instructions_it_was_built_for(tmp_path, monkeypatch):
    """The machine's own build against plain x86-64 (SSE2: 4-float vectors; elsewhere: no target flag)."""
    assert_same_bits_over_builds(tmp_path, monkeypatch, ["x86-64"])


@pytest.mark.slow
@needs_compiler
def test_the_same_bits_for_avx2_and_untargeted_builds(tmp_path, monkeypatch):
    """… and against AVX2 (x86-64-v3: 8-float vectors, 16 registers) and a build with no target flag."""
    assert_same_bits_over_builds(tmp_path, monkeypatch, ["x86-64-v3", ""])


@needs_compiler
def test_a_diverged_seed_does_not_touch_the_others():
    model, x, y, order = problem(SZT_SIZES, "tanh")
    before = compiled_grads(model, x, y, order, 0, 512)
    with torch.no_grad():
        model.weights[2][1, 0, 0] = float("nan")
    after = compiled_grads(model, x, y, order, 0, 512)
    assert torch.isnan(after[0][1]).any()  # seed 1's NaN reaches its own gradients …
    for a, b in zip(after, before):  # … and no other seed's
        assert torch.equal(a[0], b[0]) and torch.equal(a[2], b[2])


def szt(extra: str = "") -> Engine:
    return Engine(parse_scenario('[run]\nepochs = 3\nseeds = 2\ndevice = "cpu"\n' + extra +
                                 '[measure]\nsnapshots = 1\nestimators = []\n[measure.dynamics]\nenabled = false\n'))


@needs_compiler
def test_the_engine_takes_the_compiled_step_unless_told_not_to():
    fast, plain = szt("compiled_step = true\n"), szt("compiled_step = false\n")
    assert fast.backend.compiled is not None and plain.backend.compiled is None
    assert any("compiled step" in n for n in fast.info.notes)
    assert not any("training:" in n for n in plain.info.notes)
    for _ in range(3):
        fast.train_epoch()
        plain.train_epoch()
    for a, b in zip(fast.model.parameters(), plain.model.parameters()):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)  # the same training, rounded differently


def test_without_a_compiler_pytorch_trains_and_the_run_says_so(monkeypatch):
    monkeypatch.setenv("IBTUI_NATIVE", "0")
    compiled_step.library.cache_clear()
    try:
        engine = szt()
        assert engine.backend.compiled is None
        assert any("no working C compiler" in n for n in engine.info.notes)
        engine.train_epoch()
        assert all(torch.isfinite(p).all() for p in engine.model.parameters())
    finally:
        compiled_step.library.cache_clear()


def test_wide_or_unknown_networks_keep_pytorch():
    cpu = torch.device("cpu")
    assert compiled_step.supports(BatchedMLP([0], SZT_SIZES, "tanh"), cpu)
    assert not compiled_step.supports(BatchedMLP([0], [784, 100, 10], "tanh"), cpu)  # MNIST-wide: PyTorch's matmul
    assert not compiled_step.supports(BatchedMLP([0], SZT_SIZES, "sigmoid"), cpu)
    assert not compiled_step.supports(BatchedMLP([0], SZT_SIZES, "tanh").double(), cpu)
    assert not compiled_step.supports(BatchedMLP([0], [4] * 40, "tanh"), cpu)  # deeper than the kernel takes
