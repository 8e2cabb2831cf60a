"""IBTUI_CFLAGS (ibtui.compiled.target_flags): it replaces the kernels' target flag, so another instruction set can
be built and timed on the machine at hand, and it is part of the cached library's name."""
import platform

import pytest

from ibtui import compiled

FLAG_SETS = (["-O2", "-march=native", "-ffp-contract=off"], ["-O2", "-ffp-contract=off"])
# What the compiler targets, from its predefined macros (as the kernels choose their vector width).
PROBE = """
int vector_floats(void) {
#if defined(__AVX512F__)
    return 16;
#elif defined(__AVX2__)
    return 8;
#else
    return 4;
#endif
}
"""


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("IBTUI_CFLAGS", raising=False)
    monkeypatch.delenv("IBTUI_NATIVE", raising=False)
    return tmp_path / "ibtui"


def test_the_flag_sets_are_kept_without_it(monkeypatch):
    monkeypatch.delenv("IBTUI_CFLAGS", raising=False)
    assert compiled.target_flags(FLAG_SETS) == [list(f) for f in FLAG_SETS]
    monkeypatch.setenv("IBTUI_CFLAGS", "  ")
    assert compiled.target_flags(FLAG_SETS) == [list(f) for f in FLAG_SETS]


def test_it_replaces_the_target_flag_and_drops_the_untargeted_fallback(monkeypatch):
    monkeypatch.setenv("IBTUI_CFLAGS", "-march=x86-64-v3 -mtune=znver3")
    assert compiled.target_flags(FLAG_SETS) == [["-O2", "-march=x86-64-v3", "-mtune=znver3", "-ffp-contract=off"]]


def test_each_target_is_built_and_cached_under_its_own_name(cache, monkeypatch):
    if compiled.compiler() is None or platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("no C compiler, or not an x86-64 machine")
    widths = {}
    for target in ("-march=x86-64", "-march=x86-64-v3"):
        monkeypatch.setenv("IBTUI_CFLAGS", target)
        lib = compiled.load("probe", PROBE, FLAG_SETS)
        assert lib is not None
        widths[target] = lib.vector_floats()
    assert widths == {"-march=x86-64": 4, "-march=x86-64-v3": 8}  # SSE2 and AVX2, whatever this machine has
    assert len(list(cache.glob("probe-*.so"))) == 2
    monkeypatch.setenv("IBTUI_CFLAGS", "-march=x86-64")  # built before: loaded, not built again
    assert compiled.load("probe", PROBE, FLAG_SETS).vector_floats() == 4
    assert len(list(cache.glob("probe-*.so"))) == 2


def test_flags_the_compiler_refuses_give_no_kernel_and_a_note(cache, monkeypatch):
    if compiled.compiler() is None:
        pytest.skip("no C compiler")
    monkeypatch.setattr(compiled, "_notes", [])  # this note is not left for later tests' runs
    monkeypatch.setenv("IBTUI_CFLAGS", "-march=no-such-cpu")
    assert compiled.load("probe", PROBE, FLAG_SETS) is None  # not the portable build in its place
    assert any("IBTUI_CFLAGS=-march=no-such-cpu" in n for n in compiled.notes())
