"""The scanner the service tests run on every metric file finds each forbidden shape."""

from __future__ import annotations

import pytest
from metrics.privacy import private_data

from chatmail_services.metrics import Registry


@pytest.mark.parametrize(
    "line",
    [
        'chatmail_x_total{who="alice@chat.example"} 1',
        'chatmail_x_total{ip="192.0.2.1"} 1',
        'chatmail_x_total{ip="2001:db8::1"} 1',
        'chatmail_x_total{token="0123456789abcdef0123"} 1',
        'chatmail_x_total{token="eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"} 1',
        "chatmail_x_total 192.0.2.1",
        "# HELP chatmail_x_total for alice@chat.example",
    ],
)
def test_each_shape_is_found(line):
    assert private_data(line)


def test_a_histogram_with_its_bounds_is_clean():
    """Bucket bounds (le="0.00025") and timestamps are numbers, not addresses."""
    registry = Registry()
    registry.histogram("chatmail_x_seconds", "x").observe(0.003)
    registry.gauge("chatmail_x_timestamp_seconds", "x").set(1765000000.123)
    registry.gauge("chatmail_x_ratio", "x").set(0.00691952100078197)
    assert private_data(registry.render()) == []
