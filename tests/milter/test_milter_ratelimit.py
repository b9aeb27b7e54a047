"""GCRA rate limiter: rate, burst, recovery, case-insensitive keys, flat memory."""

from __future__ import annotations

import threading

import pytest
from chatmail_services.milter.ratelimit import RateLimiter
from hypothesis import given
from hypothesis import strategies as st


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_one_per_interval():
    clock = Clock()
    limiter = RateLimiter(60, 10, clock)
    assert all(limiter.allow("a@x") for _ in range(10))
    assert not limiter.allow("a@x")
    assert not limiter.allow("A@X")  # keyed case-insensitively
    assert limiter.allow("b@x")  # other senders unaffected
    clock.now += 1.0
    assert limiter.allow("a@x")
    assert not limiter.allow("a@x")
    clock.now += 10.0
    assert sum(limiter.allow("a@x") for _ in range(20)) == 10


def test_sustained_rate_is_per_minute():
    clock = Clock()
    limiter = RateLimiter(60, 10, clock)
    allowed = 0
    for _ in range(600):  # ten minutes, one attempt every second... and a burst at start
        allowed += sum(limiter.allow("a@x") for _ in range(3))
        clock.now += 1.0
    assert 600 <= allowed <= 610


@given(st.lists(st.floats(0, 5), max_size=60), st.integers(1, 120), st.integers(1, 20))
def test_hypothesis_never_more_than_burst_plus_rate(gaps, per_minute, burst):
    clock = Clock()
    limiter = RateLimiter(per_minute, burst, clock)
    start = clock.now
    allowed = 0
    for gap in gaps:
        clock.now += gap
        allowed += limiter.allow("s@x")
    elapsed = clock.now - start
    assert allowed <= burst + elapsed * per_minute / 60 + 1e-9


def test_memory_flat_idle_senders_forgotten():
    clock = Clock()
    limiter = RateLimiter(60, 10, clock)
    for i in range(100_000):
        assert limiter.allow(f"user{i}@x")
        if i % 1000 == 999:
            clock.now += 1.0
    # only senders active within burst * interval (10 s) remain
    assert len(limiter) <= 12_000
    clock.now += 11.0
    limiter.allow("last@x")
    assert len(limiter) == 1


def test_thread_safe_counts():
    limiter = RateLimiter(1, 50, Clock())
    results: list[bool] = []

    def worker() -> None:
        results.extend(limiter.allow("a@x") for _ in range(100))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results) == 50


def test_bad_parameters():
    with pytest.raises(ValueError):
        RateLimiter(0, 1)
