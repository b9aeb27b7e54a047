"""What systemd says about the units: `systemctl show` read and parsed, the journal's last
error line of a unit. The parser is pure; `show` and `last_error` run the commands."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from .redact import redact

PROPERTIES = (
    "Id",
    "LoadState",
    "ActiveState",
    "SubState",
    "Result",
    "ExecMainStatus",
    "ExecMainExitTimestamp",
)
TIMEOUT = 20.0


class SystemdError(Exception):
    """systemctl could not answer (one line for the admin)."""


def parse_show(text: str) -> list[dict[str, str]]:
    """`systemctl show` output of several units: one dict per block of `Key=Value` lines
    (blocks are separated by empty lines; a value may hold `=`). ValueError on a line
    without `=`."""
    units: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.split("\n"):
        if not line:
            if current:
                units.append(current)
                current = {}
            continue
        key, sep, value = line.partition("=")
        if not sep or not key:
            raise ValueError(f"not a Key=Value line: {redact(line)!r}")
        current[key] = value
    if current:
        units.append(current)
    return units


def parse_timestamp(value: str) -> float | None:
    """A `--timestamp=unix` value (`@1700000000`), None when empty (never happened).
    ValueError for anything else."""
    if not value or value == "n/a":
        return None
    if not value.startswith("@"):
        raise ValueError(f"not a unix timestamp: {value!r}")
    seconds = float(value[1:])
    return seconds if seconds > 0 else None


def show(units: Sequence[str]) -> dict[str, dict[str, str]]:
    """The PROPERTIES of each unit, by unit name; SystemdError when systemctl fails."""
    command = ["systemctl", "show", "--timestamp=unix", "-p", ",".join(PROPERTIES), "--", *units]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SystemdError(f"systemctl: {exc}") from None
    if result.returncode != 0:
        first = (result.stderr.strip().splitlines() or ["no output"])[0]
        raise SystemdError(f"systemctl: {redact(first)}")
    try:
        blocks = parse_show(result.stdout)
    except ValueError as exc:
        raise SystemdError(f"systemctl: {exc}") from None
    found = {block.get("Id", ""): block for block in blocks}
    missing = [unit for unit in units if unit not in found]
    if missing:
        raise SystemdError(f"systemctl said nothing about {', '.join(missing)}")
    return found


def journal_lines(unit: str, count: int, priority: str | None = None) -> list[str] | None:
    """The unit's last `count` journal messages (oldest first), None when the journal cannot
    be read (not root, no journal). Lines are as logged: redact before showing them."""
    command = ["journalctl", "--no-pager", "-q", "-o", "cat", "-n", str(count), "-u", unit]
    if priority:
        command += ["-p", priority]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    return [line for line in result.stdout.splitlines() if line.strip()]


def last_error(unit: str) -> str | None:
    """The unit's last journal line of priority err or worse, redacted; None if none."""
    lines = journal_lines(unit, 1, "err")
    return redact(lines[-1]) if lines else None
