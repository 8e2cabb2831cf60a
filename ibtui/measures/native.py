"""The compiled tile-sum kernel (tile_sums.c), built and cached by `ibtui.compiled`; None where no compiler
works, so that callers fall back to PyTorch.

Why compiled: the KDE bounds' tile sums are ~10⁹ kernel evaluations a snapshot at SZT size. In separate PyTorch
operations each costs ~2 ns (two matmuls, exp2, sums, each a pass over memory); one loop that keeps a block's
distances in registers costs 0.4–0.6 ns (benchmarks/bench_estimators.py, docs/PERFORMANCE.md). torch.compile's
CPU code for the same sums measured 0.7–1.2 ns: its exp2 and its loop order are not made for this.
"""
from __future__ import annotations

import ctypes
import threading
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache

import torch

from ibtui import compiled

SOURCE = "tile_sums.c"
_lent = 0  # cores lent by threads that are waiting for these sums (see lend_core)
_jobs = 0  # measuring jobs running at once (see running_job): they share the lent cores
_lent_lock = threading.Lock()
_lent_changed = threading.Condition(_lent_lock)
_local = threading.local()  # .single: this thread is one of map_threads' workers; .cancel: see cancel_with
# Tried in order: the first set the compiler accepts is used (-march=native is not known to every compiler).
FLAG_SETS = (["-O3", "-march=native", "-ffast-math"], ["-O3", "-ffast-math"])


def _bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    p, i64 = ctypes.c_void_p, ctypes.c_int64
    lib.tile_pair_sums.argtypes = [p, i64, i64, p, p, p, i64, ctypes.c_float, ctypes.c_float, p, i64, p, p]
    lib.tile_pair_sums.restype = None
    lib.tree_order.argtypes = [p, p, i64, i64, i64, p, i64, i64, p, p]
    lib.tree_order.restype = None
    lib.add_pair_sums.argtypes = [p, p, p, p, p, p, i64, i64, i64, p, i64, p, p]
    lib.add_pair_sums.restype = None
    lib.tile_sums_limits.argtypes = [ctypes.POINTER(i64)] * 3
    lib.tile_sums_limits.restype = ctypes.c_int
    return lib


@cache
def tile_sums() -> ctypes.CDLL | None:
    """The loaded library, or None (no compiler, a failed build, or IBTUI_NATIVE=0)."""
    return compiled.library("ibtui.measures", SOURCE, FLAG_SETS, _bind)


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
    with _lent_changed:
        _lent += 1
        _lent_changed.notify_all()
    try:
        yield
    finally:
        with _lent_lock:
            _lent -= 1


def wait_for_lent_core(timeout: float) -> bool:
    """Whether a core is lent now, waiting up to `timeout` seconds for one (a second measuring worker runs a
    job only then: ibtui.engine.overlap)."""
    with _lent_changed:
        return _lent_changed.wait_for(lambda: _lent > 0, timeout)


@contextmanager
def running_job():
    """Around a measuring job on a worker thread: jobs running at once share the lent cores (`threads`)."""
    global _jobs
    with _lent_lock:
        _jobs += 1
    try:
        yield
    finally:
        with _lent_lock:
            _jobs -= 1


class Cancelled(Exception):
    """The measuring job that called `map_threads` was dropped (a stop): its remaining items are skipped."""


def cancel_with(event: threading.Event) -> None:
    """In the calling thread (the measuring worker), `map_threads` skips its remaining items once `event` is set,
    so that its helper threads, which a process waits for at exit, end after the item they are on."""
    _local.cancel = event


def threads() -> int:
    """Threads for a call of the kernel: torch's thread count, plus the cores lent now less those taken by the
    other measuring jobs running (1 inside map_threads)."""
    if getattr(_local, "single", False):
        return 1
    return max(1, torch.get_num_threads() + _lent - max(0, _jobs - 1))


def map_threads(fn, items: Sequence) -> Iterator:
    """fn(item) for each item, in order, on `threads()` threads, each call's own kernel calls on one (one call
    at a time, lazily, where that is one thread). A snapshot's layers share the cores better this way than one
    layer's kernel calls alone, whose PyTorch steps around them run on one thread. The results do not depend on
    the thread count."""
    n = min(threads(), len(items))
    cancel = getattr(_local, "cancel", None)
    if n <= 1:
        yield from map(fn, items)
        return

    def one(item):
        if cancel is not None and cancel.is_set():
            raise Cancelled
        _local.single = True
        try:
            return fn(item)
        finally:
            _local.single = False

    with ThreadPoolExecutor(n, thread_name_prefix="ibtui-kde") as pool:
        yield from pool.map(one, items)
