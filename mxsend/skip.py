"""Hosts not to try over HTTPS for a while: after mail to a host went to SMTP.

In memory only (a restart forgets it: the next message then tries HTTPS once more), shared by
the service's threads. The clock is a parameter, so tests need no sleeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class SkipTable:
    """{host: until} with a lock; expired entries are dropped as they are met."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def skip(self, host: str) -> None:
        """No HTTPS to `host` for the next `seconds`."""
        if self.seconds <= 0:
            return
        with self._lock:
            self._until[host] = self.clock() + self.seconds

    def skipped(self, host: str) -> bool:
        with self._lock:
            until = self._until.get(host)
            if until is None:
                return False
            if self.clock() >= until:
                del self._until[host]
                return False
            return True
