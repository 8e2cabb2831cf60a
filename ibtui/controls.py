"""Controls: the only channel from the UI back to the engine.

Written by key handlers (or a test), read by the engine: pause between optimiser steps (one Event check a
step, no device sync; at epoch boundaries when an epoch is a replayed CUDA graph), stop and noise changes at
epoch boundaries. Single attribute writes are atomic under the GIL; pause and stop are Events so the engine
can wait.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


@dataclass
class Controls:
    paused: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    # Index into the scenario's list of noise levels (model.noise_levels); None = keep current.
    noise_index: int | None = None
    # The live app draws the run: the engine keeps its measuring queue short (overlap.LIVE_LAG_S), so what is
    # drawn is at most a few seconds old; headless runs queue deeper.
    live: bool = False

    def request_noise(self, index: int) -> None:
        """Ask the engine to switch to noise level `index` at the next epoch boundary."""
        self.noise_index = index

    def toggle_pause(self) -> bool:
        if self.paused.is_set():
            self.paused.clear()
        else:
            self.paused.set()
        return self.paused.is_set()

    def wait_while_paused(self, poll: float = 0.05) -> None:
        """Between steps: return at once when running, else wait until resumed or asked to stop."""
        while self.paused.is_set() and not self.stop.is_set():
            time.sleep(poll)

    def should_stop(self, poll: float = 0.05) -> bool:
        """At an epoch boundary: wait while paused; True if the run must stop now."""
        self.wait_while_paused(poll)
        return self.stop.is_set()
