"""Building, caching and falling back from the compiled tile kernel (ibtui.measures.native)."""
import functools
import math
import os
import shutil
import tempfile

import pytest
import torch

import ibtui.measures.kernel_tiles as kt
from ibtui import compiled
from ibtui.measures import native


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """An empty cache folder, a temporary directory of its own, and no library loaded yet (and none left loaded
    for later tests)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("IBTUI_NATIVE", raising=False)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    native.tile_sums.cache_clear()
    yield tmp_path / "ibtui"
    native.tile_sums.cache_clear()


def test_built_once_into_the_cache_and_reused(fresh):
    if compiled.compiler() is None:
        pytest.skip("no C compiler on this machine")
    assert native.tile_sums() is not None  # a machine with a compiler must build it
    (built,) = fresh.iterdir()
    assert built.suffix == ".so"
    stamp = built.stat().st_mtime_ns
    native.tile_sums.cache_clear()
    assert native.tile_sums() is not None
    assert list(fresh.iterdir()) == [built] and built.stat().st_mtime_ns == stamp  # loaded, not rebuilt


def test_an_unwritable_cache_falls_back_to_a_private_temporary_folder(fresh, tmp_path, monkeypatch):
    if compiled.compiler() is None or not hasattr(os, "getuid"):
        pytest.skip("no C compiler, or no user ids, on this machine")
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))  # ~/.cache/ibtui cannot be made under a file
    assert native.tile_sums() is not None
    private = tmp_path / "tmp" / f"ibtui-{os.getuid()}"
    assert [p.suffix for p in private.iterdir()] == [".so"]
    assert private.stat().st_mode & 0o077 == 0  # this user's alone
    assert blocked.read_text() == ""


def test_a_failing_compiler_falls_back_to_pytorch_and_leaves_nothing(fresh, tmp_path, monkeypatch):
    if shutil.which("false") is None:
        pytest.skip("no `false` command")
    monkeypatch.setenv("CC", "false")  # a "compiler" that fails every build
    assert native.tile_sums() is None
    for folder in (fresh, tmp_path / "tmp" / f"ibtui-{getattr(os, 'getuid', lambda: 0)()}"):
        assert not folder.exists() or list(folder.iterdir()) == []
    g = torch.Generator().manual_seed(0)
    x = torch.tanh(torch.randn(2, 100, 3, generator=g))
    total, _ = kt.self_kernel_log_sums_tiled(x, (500.0, 125.0))  # the PyTorch sums
    exact = torch.logsumexp(-125.0 * torch.cdist(x.double(), x.double()).square(), dim=-1)
    assert float((total[1].double() - exact).abs().max()) < 1e-6


def test_switched_off_by_the_environment(fresh, monkeypatch):
    monkeypatch.setenv("IBTUI_NATIVE", "0")
    assert native.tile_sums() is None


def test_float32_points_on_a_cpu_take_the_compiled_kernel(monkeypatch):
    if native.tile_sums() is None:
        pytest.skip("no working C compiler")

    def refuse(*args):
        raise AssertionError("the PyTorch sums were used")

    monkeypatch.setattr(kt, "_torch_blocks", refuse)
    x = torch.rand(1, 300, 4)
    total, _ = kt.self_kernel_log_sums_tiled(x, (500.0, 125.0))
    exact = torch.logsumexp(-500.0 * torch.cdist(x.double(), x.double()).square(), dim=-1)
    assert float((total[0].double() - exact).abs().max()) < 1e-6


@pytest.mark.parametrize("target,width", [("x86-64", 4), ("x86-64-v3", 8)])
def test_every_vector_width_sums_within_the_stated_error(fresh, monkeypatch, target, width):
    """Built for SSE2 (4-float vectors) and AVX2 (8 floats, 16 registers) whatever this machine is: the block
    width follows the target (its vector width, tile_sums_limits), and the sums stay within float32 rounding of
    the exact ones."""
    import platform
    from importlib import resources

    if compiled.compiler() is None or platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("no C compiler, or not an x86-64 machine")
    monkeypatch.delenv("IBTUI_CFLAGS", raising=False)
    source = (resources.files("ibtui.measures") / native.SOURCE).read_text()
    flags = [f if f != "-march=native" else f"-march={target}" for f in native.FLAG_SETS[0]]
    lib = compiled.load("tile_sums", source, [flags])
    if lib is None:
        pytest.skip(f"the compiler refused -march={target}")
    lib = native._bind(lib)
    assert native.limits(lib)[0] == width
    monkeypatch.setattr(native, "tile_sums", functools.cache(lambda: lib))  # `fresh` clears it after
    g = torch.Generator().manual_seed(7)
    x = torch.tanh(torch.randn(2, 600, 5, generator=g) * 0.7)
    y = torch.randint(0, 2, (600,), generator=g)
    total, own = kt.self_kernel_log_sums_tiled(x, (500.0, 125.0), y, 2)
    sq = torch.cdist(x.double(), x.double()).square()
    same = y[:, None] == y[None, :]
    for k, s in enumerate((500.0, 125.0)):
        exact = torch.logsumexp(-s * sq, dim=-1)
        exact_own = torch.logsumexp((-s * sq).masked_fill(~same, -math.inf), dim=-1)
        assert float((total[k].double() - exact).abs().max()) < 1e-6
        assert float((own[k].double() - exact_own).abs().max()) < 1e-6
