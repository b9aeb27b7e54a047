"""The ceiling of `/new`: a fixed window counted for everyone together.

No client address is kept (the service never even sees one: nginx talks to it over a UNIX
socket and passes none). One client is held back before it gets here, by nginx's per-client
limit (`[web] new_client_*`); this window only bounds all clients together, far above one
client's share: `[web] new_per_window` per `new_window` seconds (docs/web.md says why).
"""

from __future__ import annotations

import math


class RateWindow:
    """At most `count` grants per `seconds`-long window; windows start at multiples of it."""

    def __init__(self, count: int, seconds: float) -> None:
        if count < 1 or not seconds > 0:
            raise ValueError("count must be at least 1 and seconds positive")
        self.count = count
        self.seconds = seconds
        self._window = -1
        self._used = 0
        self.refused = 0  # refusals in the current window

    def _roll(self, now: float) -> None:
        window = math.floor(now / self.seconds)
        if window != self._window:
            self._window, self._used, self.refused = window, 0, 0

    def allow(self, now: float) -> bool:
        """Count one grant at time `now` if the window has room; False when it has none."""
        self._roll(now)
        if self._used >= self.count:
            self.refused += 1
            return False
        self._used += 1
        return True

    def retry_after(self, now: float) -> int:
        """Whole seconds until the next window starts (at least 1)."""
        return max(1, math.ceil((math.floor(now / self.seconds) + 1) * self.seconds - now))
