"""Snapshot estimators on a second CPU core while training goes on.

On a CPU run with one torch thread, training keeps one core busy and a snapshot's MI estimators (KDE above
all: a few hundred milliseconds a snapshot at SZT size) would stop it. Each probe splits its snapshot work
(`Probe.start`): what reads the model or the step state runs at once in the training thread; the rest reads
only what was taken then, so it can finish on a worker thread while the next epochs train. The same
operations on the same tensors give identical numbers, and records are emitted in snapshot order, so the
export is byte-identical to a run without the worker (tests/engine/test_overlap.py; the times with and
without are in docs/PERFORMANCE.md).

Snapshots in flight are bounded: a new one waits while MAX_IN_FLIGHT are in flight or while those hold
MAX_IN_FLIGHT_BYTES of activations, so memory holds at most that much; in the live app also while those would take
LIVE_LAG_S at the mean time a job took, so what is drawn is at most a few seconds old. A stop never waits for the
queue: every wait ends on the run's stop event, the snapshots finishing within STOP_GRACE_S are kept and the rest
dropped (ibtui.engine.trainer, Engine._stop_now). A log schedule's snapshots come densely at first (default szt_tanh: ~230 of its 300
in the first 1,100 of 8,000 epochs, each 0.5–0.7 s of KDE against ~15 ms an epoch of training), so training
runs ahead there and waits; while it waits, its core goes to a second worker, which measures the next snapshot
beside the first (`native.lend_core`; one snapshot alone gets both cores for its KDE sums). Default run on a
2-core AVX2 CPU, KDE on all points: 251–265 s end to end with one worker, 205–249 s with the second
(docs/PERFORMANCE.md).
"""
from __future__ import annotations

import math
import os
import queue
import threading
import time
from collections import deque
from concurrent.futures import Future, wait
from typing import Callable

import torch

from ibtui.measures import native

MAX_IN_FLIGHT = 32
MAX_IN_FLIGHT_BYTES = 256 << 20
# The live app keeps at most this many seconds of snapshots queued (by the mean time a job took), so what it
# draws is at most a few seconds old; headless runs queue up to MAX_IN_FLIGHT.
LIVE_LAG_S = 3.0
# At a stop, the snapshots in flight are waited for this long (all of them finished: the stop is at an epoch
# boundary a checkpoint may be taken at); those still unfinished then are dropped.
STOP_GRACE_S = 0.8
# How long `close` waits for a job that is running when the queue is dropped (a stop): longer jobs are left to
# end on their own (the worker is a daemon thread; a process that exits does not wait for it).
CLOSE_WAIT_S = 0.3


_dropped_threads: list[threading.Thread] = []  # workers closed while a dropped job still ran (see `abandoned`)
_stops: list[bool] = []  # one entry a queue closed after its run's stop event was set


def abandoned() -> bool:
    """Whether a run of this process was stopped (`q`, a signal) or a worker whose jobs were dropped still runs
    one: its sinks are closed, so the CLI ends the process at once instead of waiting for the interpreter's
    teardown (which joined helper threads and took up to 2.75 s after a stop on a loaded 2-core machine)."""
    return bool(_stops) or any(t.is_alive() for t in _dropped_threads)


class Stopped(Exception):
    """A wait for a measuring job was ended by the run's stop event (`q`, a signal): the run stops now."""


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
    `depth` are, they hold at most `max_bytes` with this one, and, with `max_lag_s`, those queued would take at
    most that long at the mean time a job took); `ready()` returns the results that are finished, oldest first,
    stopping at the first unfinished one; `drain()` waits for all. Every wait ends with `Stopped` as soon as the
    `stop` event is set, and `close()` drops what is queued without waiting for it, so a stop is prompt whatever
    the queue holds.
    """

    def __init__(self, worker: bool, depth: int = MAX_IN_FLIGHT, max_bytes: int = MAX_IN_FLIGHT_BYTES,
                 stop: threading.Event | None = None, workers: int = 2):
        self.worker = worker
        self.workers = max(1, workers)  # jobs at once at most: the second only while a core is lent (`_work`)
        self.depth, self.max_bytes = depth, max_bytes
        self.max_lag_s = math.inf  # the live app sets LIVE_LAG_S
        self.stop = stop  # the run's stop event (Engine.run sets it from its Controls)
        self._threads: list[threading.Thread] = []  # started by the first job, stopped by `close`
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self._cancel = threading.Event()  # set by `close`: the running job's remaining layers are skipped
        self._jobs: deque[tuple[Future, int]] = deque()  # (job, bytes it holds)
        # seconds covered by the finished jobs' run times (two at once count once), how many, where the last ended
        self._job_seconds, self._jobs_timed, self._covered_to = 0.0, 0, -math.inf
        self._timing = threading.Lock()
        self.waited_s = 0.0  # seconds the calling thread has waited for jobs (not its own work: the ETA's split)

    @property
    def in_flight(self) -> int:
        return len(self._jobs)

    @property
    def job_s(self) -> float:
        """Seconds a job takes at the rate the workers finish them (their busy time over the jobs finished: the
        mean time of one job where one runs at a time, half of it where two run at once; nan before the first)."""
        with self._timing:
            return self._job_seconds / self._jobs_timed if self._jobs_timed else math.nan

    @property
    def pending(self) -> bool:
        return bool(self._jobs)

    def _full(self, nbytes: int) -> bool:
        """Whether a job of `nbytes` must wait: `depth` in flight, `max_bytes` held, or (with `max_lag_s`) the jobs
        in flight would take that long at the mean time a job took (before the first has ended, one at a time)."""
        n = len(self._jobs)
        if n >= self.depth or sum(b for _, b in self._jobs) + nbytes > self.max_bytes:
            return True
        return math.isfinite(self.max_lag_s) and n > 0 and (not self._jobs_timed or n * self.job_s >= self.max_lag_s)

    def submit(self, job: Callable[[], object], nbytes: int = 0) -> list:
        """Start `job` (holding `nbytes` until it ends); returns the results it waited for first."""
        done = []
        while self._jobs and self._full(nbytes):
            done.append(self.oldest())
        job = self._timed(job)
        f: Future = Future()
        if not self.worker:
            f.set_result(job())
        else:
            if not self._threads:  # the workers use the training thread's torch thread count
                self._cancel = threading.Event()
                self._threads = [threading.Thread(target=_work, name=f"ibtui-measure-{i}", daemon=True,
                                                  args=(self._tasks, self._cancel, torch.get_num_threads(), i > 0))
                                 for i in range(self.workers)]
                for t in self._threads:
                    t.start()
            self._tasks.put((f, job))
        self._jobs.append((f, nbytes))
        return done

    def _timed(self, job: Callable[[], object]) -> Callable[[], object]:
        def run():
            t0 = time.perf_counter()
            try:
                return job()
            finally:
                t1 = time.perf_counter()
                with self._timing:  # the part of [t0, t1] not yet covered by a job that ended before
                    self._job_seconds += t1 - max(t0, min(self._covered_to, t1))
                    self._covered_to = max(self._covered_to, t1)
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
        compiled KDE sums (`native.lend_core`). Raises `Stopped` (the job stays queued) once `stop` is set."""
        f = self._jobs[0][0]
        t0 = time.perf_counter()
        try:
            with native.lend_core():
                while not f.done():
                    if self.stop is not None and self.stop.is_set():
                        raise Stopped
                    wait([f], timeout=0.05)
        finally:
            self.waited_s += time.perf_counter() - t0
        self._jobs.popleft()
        return f.result()

    def finish_within(self, seconds: float) -> list:
        """The results of the jobs, oldest first, that finish within `seconds` from now (whatever `stop` says);
        the rest stay queued."""
        deadline = time.perf_counter() + seconds
        out = []
        with native.lend_core():
            while self._jobs:
                f = self._jobs[0][0]
                left = deadline - time.perf_counter()
                if not f.done() and left > 0:
                    wait([f], timeout=left)
                if not f.done():
                    break
                self._jobs.popleft()
                out.append(f.result())
        return out

    def close(self) -> int:
        """Drop the jobs not yet collected (a job that is running skips its remaining layers and is left to end
        on its own after CLOSE_WAIT_S) and stop the worker thread; returns how many were dropped. A later
        `submit` starts a new worker."""
        dropped = len(self._jobs)
        if self.stop is not None and self.stop.is_set():
            _stops.append(True)
        for f, _ in self._jobs:
            f.cancel()  # a job not yet started never starts
        self._jobs.clear()
        if self._threads:
            self._cancel.set()
            for _ in self._threads:
                self._tasks.put(None)
            deadline = time.perf_counter() + CLOSE_WAIT_S
            for t in self._threads:
                t.join(max(0.0, deadline - time.perf_counter()))
                if t.is_alive():
                    _dropped_threads.append(t)
            self._threads, self._tasks = [], queue.SimpleQueue()
        return dropped


def _work(tasks: queue.SimpleQueue, cancel: threading.Event, threads: int, extra: bool = False) -> None:
    """A worker thread: jobs one after another until None (or, for an extra worker, until `cancel`). An extra
    worker takes a job only while a core is lent (the training thread waits for the jobs: the dense start of a
    log schedule), so that two snapshots are measured at once there, each on one core, instead of one snapshot
    whose layers share the two cores unevenly; while training runs, one worker keeps to its own core. Results
    are taken in submission order whichever worker finishes first, and a job's numbers do not depend on the
    thread that runs it, so the export stays the same."""
    torch.set_num_threads(threads)
    native.cancel_with(cancel)
    while not cancel.is_set():
        if extra:
            if not native.wait_for_lent_core(0.1):
                continue
            try:
                task = tasks.get(timeout=0.1)
            except queue.Empty:
                continue
        else:
            task = tasks.get()
        if task is None:
            return
        f, job = task
        if not f.set_running_or_notify_cancel():
            continue
        try:
            with native.running_job():
                f.set_result(job())
        except BaseException as exc:  # the training thread re-raises it
            f.set_exception(exc)
