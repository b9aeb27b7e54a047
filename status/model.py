"""A check's result and the overall verdict: pure values, no I/O."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field


class State(enum.IntEnum):
    """A check's state. UNKNOWN: not checked (skipped, or needs root); it says so and does
    not change the exit status. An error while checking is never UNKNOWN: it is DEGRADED."""

    UNKNOWN = -1
    OK = 0
    DEGRADED = 1
    BROKEN = 2

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Check:
    """One line of the report: a name, a state, a short text, and numbers for `--json`."""

    name: str
    state: State
    text: str
    data: dict[str, object] = field(default_factory=dict)


def overall(checks: Iterable[Check]) -> State:
    """The worst state of the checks that ran (UNKNOWN ones left out); OK if none ran."""
    return max((c.state for c in checks if c.state is not State.UNKNOWN), default=State.OK)


def exit_code(state: State) -> int:
    """0 healthy, 1 degraded, 2 broken."""
    return max(int(state), 0)


def not_readable(name: str, privileged: bool, what: str, exc: OSError) -> Check:
    """A check that could not read `what`: UNKNOWN for a caller without root (expected),
    DEGRADED for root (something is wrong)."""
    if isinstance(exc, PermissionError) and not privileged:
        return Check(name, State.UNKNOWN, f"{what} not readable without root")
    reason = exc.strerror or type(exc).__name__
    return Check(name, State.DEGRADED, f"cannot read {what}: {reason}")
