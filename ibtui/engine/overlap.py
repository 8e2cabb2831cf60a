"""Snapshot estimators on a second CPU core while training goes on.

On a CPU run with one torch thread, training keeps one core busy and a snapshot's MI estimators (KDE above
all: a few hundred milliseconds a snapshot at SZT size) would stop it. Each probe splits its snapshot work
(`Probe.start`): what reads the model or the step state runs at once in the training thread; the rest reads
only what was taken then, so it can finish on a worker thread while the next epochs train. The same
operations on the same tensors give identical numbers, and records are emitted in snapshot order, so the
export is byte-identical to a run without the worker (tests/engine/test_overlap.py; the times with and
without are in docs/PERFORMANCE.md).

At most one snapshot is in flight: a snapshot waits for the previous one, so the live view lags training
by at most one snapshot interval and memory holds at most two snapshots' activations.
"""
from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

import torch


def cores_available() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def overlap_possible(device: torch.device) -> bool:
    """A CPU run whose torch threads leave a second group of as many cores free (on a GPU the device already
    runs asynchronously to the Python thread, and a second CPU thread would only contend for the launch)."""
    return device.type == "cpu" and cores_available() >= 2 * torch.get_num_threads()


class MeasureQueue:
    """Snapshot jobs in order: run at once (`worker=False`), or one at a time on a worker thread.

    `submit(job)` starts a job (waiting first for the one in flight); `ready()` returns the results that
    are finished, oldest first, stopping at the first unfinished one; `drain()` waits for all.
    """

    def __init__(self, worker: bool):
        self.worker = worker
        self._pool: ThreadPoolExecutor | None = None  # started by the first job, stopped by `close`
        self._jobs: deque[Future] = deque()

    @property
    def pending(self) -> bool:
        return bool(self._jobs)

    def submit(self, job: Callable[[], object]) -> list:
        """Start `job`; returns the results this finished first (the job in flight, which it waited for)."""
        done = self.drain() if self._jobs else []
        if not self.worker:
            f: Future = Future()
            f.set_result(job())
        else:
            if self._pool is None:  # the worker uses the training thread's torch thread count
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="ibtui-measure",
                                                initializer=torch.set_num_threads, initargs=(torch.get_num_threads(),))
            f = self._pool.submit(job)
        self._jobs.append(f)
        return done

    def ready(self) -> list:
        out = []
        while self._jobs and self._jobs[0].done():
            out.append(self._jobs.popleft().result())  # re-raises the job's exception in the training thread
        return out

    def drain(self) -> list:
        out = []
        while self._jobs:
            out.append(self._jobs.popleft().result())
        return out

    def close(self) -> None:
        """Stop the worker thread (jobs not yet collected are dropped); a later `submit` starts a new one."""
        self._jobs.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
