"""The compiled tile-sum kernel (tile_sums.c): built once per machine with the system's C compiler, loaded with
ctypes, and None where no compiler works, so that callers fall back to PyTorch.

Why compiled: the KDE bounds' tile sums are ~10⁹ kernel evaluations a snapshot at SZT size. In separate PyTorch
operations each costs ~2 ns (two matmuls, exp2, sums, each a pass over memory); one loop that keeps a block's
distances in registers costs 0.4–0.6 ns (benchmarks/bench_estimators.py, docs/PERFORMANCE.md). torch.compile's
CPU code for the same sums measured 0.7–1.2 ns: its exp2 and its loop order are not made for this.

The library is cached under $XDG_CACHE_HOME/ibtui (else ~/.cache/ibtui; where that cannot be written, a
folder of the temporary directory owned by the user alone), named by a hash of the source, the compiler and the
flags, so a changed source or compiler builds a new one and nothing else is ever overwritten.
IBTUI_NATIVE=0 turns it off (PyTorch sums, for comparison); CC names the compiler (default: cc, gcc, clang).
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from importlib import resources
from pathlib import Path

import torch

SOURCE = "tile_sums.c"
_lent = 0  # cores lent by threads that are waiting for these sums (see lend_core)
_lent_lock = threading.Lock()
_local = threading.local()  # .single: this thread is one of map_threads' workers
# Tried in order: the first set the compiler accepts is used (-march=native is not known to every compiler).
FLAG_SETS = (["-O3", "-march=native", "-ffast-math"], ["-O3", "-ffast-math"])


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ibtui"


def _folders():
    """Where the library may be kept: the user's cache, else a folder of the temporary directory that only
    this user owns and can write (a read-only home on a cluster, say)."""
    yield cache_dir()
    uid = getattr(os, "getuid", lambda: None)()
    if uid is not None:
        folder = Path(tempfile.gettempdir()) / f"ibtui-{uid}"
        try:
            folder.mkdir(mode=0o700, exist_ok=True)
            info = folder.stat()
        except OSError:
            return
        if info.st_uid == uid and not info.st_mode & 0o022:
            yield folder


def _compiler() -> str | None:
    for name in ([os.environ["CC"]] if os.environ.get("CC") else []) + ["cc", "gcc", "clang"]:
        path = shutil.which(name)
        if path:
            return path
    return None


def _version(compiler: str) -> str:
    try:
        return subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def _build(compiler: str, source: str, flags: list[str], target: Path) -> bool:
    """Compile into a temporary file beside `target`, then rename it into place (atomic: a process that
    builds the same library at the same time replaces it with an identical file)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    src = Path(tmp).with_suffix(".c")
    try:
        src.write_text(source)
        done = subprocess.run([compiler, *flags, "-std=c11", "-fPIC", "-shared", str(src), "-o", tmp],
                              capture_output=True, timeout=120)
        if done.returncode != 0:
            return False
        os.replace(tmp, target)
        return True
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        for leftover in (Path(tmp), src):
            leftover.unlink(missing_ok=True)


def _bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    p, i64 = ctypes.c_void_p, ctypes.c_int64
    lib.tile_pair_sums.argtypes = [p, i64, i64, p, p, p, i64, ctypes.c_float, ctypes.c_float, p, i64, p, p]
    lib.tile_pair_sums.restype = None
    lib.tree_order.argtypes = [p, p, i64, i64, i64, p, i64, i64, p, p]
    lib.tree_order.restype = None
    lib.tile_sums_limits.argtypes = [ctypes.POINTER(i64)] * 3
    lib.tile_sums_limits.restype = ctypes.c_int
    return lib


@cache
def tile_sums() -> ctypes.CDLL | None:
    """The loaded library, or None (no compiler, a failed build, or IBTUI_NATIVE=0)."""
    if os.environ.get("IBTUI_NATIVE", "1").strip() == "0":
        return None
    compiler = _compiler()
    if compiler is None:
        return None
    source = resources.files("ibtui.measures").joinpath(SOURCE).read_text()
    version = _version(compiler)
    for folder in _folders():
        for flags in FLAG_SETS:
            key = hashlib.sha256("\0".join([source, compiler, version, platform.machine(), *flags]).encode())
            target = folder / f"tile_sums-{key.hexdigest()[:16]}.so"
            try:
                if target.exists() or _build(compiler, source, flags, target):
                    return _bind(ctypes.CDLL(str(target)))
            except OSError:  # an unwritable folder or a library that does not load
                continue
    return None


def limits(lib: ctypes.CDLL) -> tuple[int, int, int]:
    """(vector width the tile size must be a multiple of, most scales, largest tile)."""
    values = [ctypes.c_int64() for _ in range(3)]
    lib.tile_sums_limits(*[ctypes.byref(v) for v in values])
    return tuple(v.value for v in values)


@contextmanager
def lend_core():
    """While the calling thread only waits for work that uses the kernel (the training thread waiting for the
    measuring worker: ibtui.engine.overlap), the kernel may run one more thread on its core."""
    global _lent
    with _lent_lock:
        _lent += 1
    try:
        yield
    finally:
        with _lent_lock:
            _lent -= 1


def threads() -> int:
    """Threads for a call of the kernel: torch's thread count, plus the cores lent now (1 inside map_threads)."""
    return 1 if getattr(_local, "single", False) else torch.get_num_threads() + _lent


def map_threads(fn, items: Sequence) -> Iterator:
    """fn(item) for each item, in order, on `threads()` threads, each call's own kernel calls on one (one call
    at a time, lazily, where that is one thread). A snapshot's layers share the cores better this way than one
    layer's kernel calls alone, whose PyTorch steps around them run on one thread. The results do not depend on
    the thread count."""
    n = min(threads(), len(items))
    if n <= 1:
        yield from map(fn, items)
        return

    def one(item):
        _local.single = True
        try:
            return fn(item)
        finally:
            _local.single = False

    with ThreadPoolExecutor(n, thread_name_prefix="ibtui-kde") as pool:
        yield from pool.map(one, items)
