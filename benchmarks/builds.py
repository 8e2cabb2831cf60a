"""The kernels' builds that the benchmarks time side by side: the machine's own (-march=native) and, through
IBTUI_CFLAGS (ibtui.compiled.target_flags), AVX2 (x86-64-v3: 8-float vectors, 16 registers, as on most laptops
and AMD EPYCs without AVX-512) and plain x86-64 (SSE2: 4 floats). An AVX-512 machine running the x86-64-v3 build
shows how the kernels do on an AVX2 one."""
from __future__ import annotations

import os
import platform
from contextlib import contextmanager

from ibtui.engine.backends import compiled_step
from ibtui.measures import native

BUILDS = {"native": "", "x86-64-v3": "-march=x86-64-v3", "x86-64": "-march=x86-64"}  # name -> IBTUI_CFLAGS


def available(names: list[str]) -> list[str]:
    """The builds of `names` this machine can run: the x86-64 levels only on an x86-64 CPU."""
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    return [n for n in names if n in BUILDS and (x86 or n == "native")]


@contextmanager
def build(name: str):
    """Inside: IBTUI_CFLAGS set for build `name` (unset for "native") and the kernels' loaders cleared, so
    compiled_step.library() and native.tile_sums() load (or build once, then cache) that build."""
    before = os.environ.get("IBTUI_CFLAGS")
    if BUILDS[name]:
        os.environ["IBTUI_CFLAGS"] = BUILDS[name]
    else:
        os.environ.pop("IBTUI_CFLAGS", None)
    compiled_step.library.cache_clear()
    native.tile_sums.cache_clear()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("IBTUI_CFLAGS", None)
        else:
            os.environ["IBTUI_CFLAGS"] = before
        compiled_step.library.cache_clear()
        native.tile_sums.cache_clear()
