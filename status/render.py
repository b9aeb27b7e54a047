"""The report, as text for the admin and as JSON for scripts (pure)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from .model import Check, overall


def as_text(checks: Sequence[Check]) -> str:
    """A headline with the overall state, then one line per check."""
    width = max((len(c.name) for c in checks), default=0)
    lines = [f"chatmail relay: {overall(checks).label}"]
    lines += [f"  {c.state.label:<8} {c.name:<{width}}  {_one_line(c.text)}" for c in checks]
    return "\n".join(lines) + "\n"


def _one_line(text: str) -> str:
    return "".join(ch if ch.isprintable() else " " for ch in text)


def as_json(checks: Sequence[Check]) -> str:
    """{"state": ..., "checks": [{"name", "state", "text", "data"}, ...]} on one line."""
    return (
        json.dumps(
            {
                "state": overall(checks).label,
                "checks": [
                    {"name": c.name, "state": c.state.label, "text": c.text, "data": c.data}
                    for c in checks
                ],
            },
            sort_keys=False,
        )
        + "\n"
    )
