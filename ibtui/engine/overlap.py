"""Snapshot estimators on a second CPU core while training goes on.

On a CPU run with one torch thread, training keeps one core busy and a snapshot's MI estimators (KDE above
all: a few hundred milliseconds a snapshot at SZT size) would stop it. Each probe splits its snapshot work
(`Probe.start`): what reads the model or the step state runs at once in the training thread; the rest reads
only what was taken then, so it can finish on a worker thread while the next epochs train. The same
operations on the same tensors give identical numbers, and records are emitted in snapshot order, so the
export is byte-identical to a run without the worker (tests/engine/test_overlap.py; the times with and
without are in docs/PERFORMANCE.md).

Snapshots in flight are bounded: a new one waits while MAX_IN_FLIGHT are in flight or while those hold
MAX_IN_FLIGHT_BYTES of activations, so the live view lags training by at most that many snapshots and memory
holds at most that much. A log schedule's snapshots come densely at first (default szt_tanh: ~230 of its 300
in the first 1,100 of 8,000 epochs, each 0.5–0.7 s of KDE against ~15 ms an epoch of training), so training
runs ahead there and waits; while it waits, its core goes to the compiled KDE sums (`native.lend_core`).
Default run on a 2-core CPU, KDE on all points: 203–235 s end to end with one snapshot in flight, 192–222 s
now (docs/PERFORMANCE.md).
"""
from __future__ import annotations

import math
import os
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

import torch

from ibtui.measures import native

MAX_IN_FLIGHT = 32
MAX_IN_FLIGHT_BYTES = 256 << 20


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
    """Snapshot jobs in order: run at once (`worker=False`), or one after another on a worker thread.

    `submit(job, nbytes)` starts a job (waiting first, oldest first, for jobs in flight until fewer than
    `depth` are and they hold at most `max_bytes` with this one); `ready()` returns the results that are
    finished, oldest first, stopping at the first unfinished one; `drain()` waits for all.
    """

    def __init__(self, worker: bool, depth: int = MAX_IN_FLIGHT, max_bytes: int = MAX_IN_FLIGHT_BYTES):
        self.worker = worker
        self.depth, self.max_bytes = depth, max_bytes
        self._pool: ThreadPoolExecutor | None = None  # started by the first job, stopped by `close`
        self._jobs: deque[tuple[Future, int]] = deque()  # (job, bytes it holds)
        self._job_seconds, self._jobs_timed = 0.0, 0  # seconds the finished jobs took, and how many

    @property
    def in_flight(self) -> int:
        return len(self._jobs)

    @property
    def job_s(self) -> float:
        """Mean seconds a job took (nan before the first)."""
        return self._job_seconds / self._jobs_timed if self._jobs_timed else math.nan

    @property
    def pending(self) -> bool:
        return bool(self._jobs)

    def submit(self, job: Callable[[], object], nbytes: int = 0) -> list:
        """Start `job` (holding `nbytes` until it ends); returns the results it waited for first."""
        done = []
        while self._jobs and (len(self._jobs) >= self.depth
                              or sum(n for _, n in self._jobs) + nbytes > self.max_bytes):
            done.append(self.oldest())
        job = self._timed(job)
        if not self.worker:
            f: Future = Future()
            f.set_result(job())
        else:
            if self._pool is None:  # the worker uses the training thread's torch thread count
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="ibtui-measure",
                                                initializer=torch.set_num_threads, initargs=(torch.get_num_threads(),))
            f = self._pool.submit(job)
        self._jobs.append((f, nbytes))
        return done

    def _timed(self, job: Callable[[], object]) -> Callable[[], object]:
        def run():
            t0 = time.perf_counter()
            try:
                return job()
            finally:
                self._job_seconds += time.perf_counter() - t0
                self._jobs_timed += 1
        return run

    def ready(self) -> list:
        out = []
        while self._jobs and self._jobs[0][0].done():
            out.append(self._jobs.popleft()[0].result())  # re-raises the job's exception in the training thread
        return out

    def drain(self) -> list:
        out = []
        while self._jobs:
            out.append(self.oldest())
        return out

    def oldest(self):
        """The oldest job's result, waited for; while the calling thread waits, its core goes to the job's
        compiled KDE sums (`native.lend_core`)."""
        with native.lend_core():
            return self._jobs.popleft()[0].result()

    def close(self) -> None:
        """Stop the worker thread (jobs not yet collected are dropped); a later `submit` starts a new one."""
        self._jobs.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
