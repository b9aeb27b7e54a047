"""Reading a service's metric file as it changes (the publisher writes every second in tests)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from metrics.promtool import parse_samples


def samples(path: Path) -> dict[str, float]:
    return parse_samples(path.read_text()) if path.exists() else {}


def wait_for(
    path: Path, done: Callable[[dict[str, float]], bool], timeout: float = 15
) -> dict[str, float]:
    """The file's samples once `done(samples)` holds; AssertionError with them after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        current = samples(path)
        if done(current):
            return current
        if time.monotonic() > deadline:
            raise AssertionError(f"{path}: not as expected within {timeout} s: {current}")
        time.sleep(0.2)


def moved(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """The samples that changed and by how much (histogram buckets and sums left out)."""
    keys = set(before) | set(after)
    return {
        key: after.get(key, 0) - before.get(key, 0)
        for key in sorted(keys)
        if after.get(key, 0) != before.get(key, 0)
    }
