"""Per-sender rate limit: GCRA (generic cell rate algorithm), one timestamp per sender.

A sender may send `burst` messages at once, then one every `60 / per_minute` seconds. The
state per sender is its theoretical arrival time (TAT); a sender whose TAT has passed is
indistinguishable from a new one, so it is forgotten at the next sweep: memory is bounded
by the senders active in the last `burst * interval` seconds, however many there were.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    """Thread-safe GCRA limiter keyed by lower-cased sender address."""

    def __init__(
        self,
        per_minute: int,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_minute < 1 or burst < 1:
            raise ValueError("per_minute and burst must be at least 1")
        self.interval = 60.0 / per_minute
        self.tolerance = self.interval * (burst - 1)
        self._clock = clock
        self._tat: dict[str, float] = {}
        self._lock = threading.Lock()
        self._next_sweep = clock() + self.interval + self.tolerance
        self._sweep_size = 1024

    def allow(self, sender: str) -> bool:
        """Count one message from `sender`; False if that exceeds the limit (nothing counted)."""
        key = sender.lower()
        with self._lock:
            now = self._clock()
            if now >= self._next_sweep or len(self._tat) >= self._sweep_size:
                self._sweep(now)
            tat = max(self._tat.get(key, now), now)
            if tat - now > self.tolerance:
                return False
            self._tat[key] = tat + self.interval
            return True

    def _sweep(self, now: float) -> None:
        # A new dict, not deletions: a dict never shrinks its table on delete.
        self._tat = {key: tat for key, tat in self._tat.items() if tat > now}
        self._next_sweep = now + self.interval + self.tolerance
        self._sweep_size = max(1024, 2 * len(self._tat))

    def __len__(self) -> int:
        return len(self._tat)
