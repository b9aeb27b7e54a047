"""The global rate window of /new (pure)."""

from __future__ import annotations

import pytest
from chatmail_services.web.ratewindow import RateWindow
from hypothesis import given
from hypothesis import strategies as st


def test_count_per_window_then_refused_until_the_next():
    window = RateWindow(3, 60)
    assert [window.allow(t) for t in (0, 1, 2, 3, 59.9)] == [True, True, True, False, False]
    assert window.refused == 2
    assert window.retry_after(30) == 30
    assert window.allow(60) and window.refused == 0


def test_bad_parameters():
    with pytest.raises(ValueError):
        RateWindow(0, 60)
    with pytest.raises(ValueError):
        RateWindow(1, 0)


@given(
    count=st.integers(1, 20),
    seconds=st.integers(1, 100),
    steps=st.lists(st.floats(0, 50, allow_nan=False), max_size=200),
)
def test_never_more_than_count_in_any_window(count, seconds, steps):
    window = RateWindow(count, seconds)
    now, granted = 0.0, {}
    for step in steps:
        now += step
        if window.allow(now):
            key = int(now // seconds)
            granted[key] = granted.get(key, 0) + 1
        assert 1 <= window.retry_after(now) <= seconds + 1
    assert all(n <= count for n in granted.values())


@given(count=st.integers(1, 20), seconds=st.integers(1, 100), start=st.floats(0, 1e9))
def test_a_fresh_window_grants_count(count, seconds, start):
    window = RateWindow(count, seconds)
    window.allow(start)  # some window
    later = (start // seconds + 1) * seconds  # the next one starts empty
    assert sum(window.allow(later) for _ in range(count + 5)) == count
