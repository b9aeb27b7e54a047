"""The judgments (pure): from what was read to a `Check`. Every threshold is here."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from chatmail_services.layout import DAY

from .model import Check, State

CERT_DEGRADED_DAYS = 14  # certbot renews 30 days ahead: fewer left means renewal fails
DEFERRED_DEGRADED = 1000  # deferred messages from which the Postfix queue is degraded
REAPER_MAX_AGE = 2 * DAY  # the timer runs daily: older than this, the reaper is not running
MIN_FREE_INODES_PERCENT = 5  # every message is a file: fewer free inodes is degraded

# what a unit is: how its states are judged
SOCKET, ON_DEMAND, TIMER, DAEMON = "socket", "on demand", "timer", "daemon"
UNITS: tuple[tuple[str, str], ...] = (
    ("chatmail-auth.socket", SOCKET),
    ("chatmail-milter.socket", SOCKET),
    ("chatmail-metadata.socket", SOCKET),
    ("chatmail-web.socket", SOCKET),
    ("chatmail-mxdeliv.socket", SOCKET),
    ("chatmail-auth.service", ON_DEMAND),
    ("chatmail-milter.service", ON_DEMAND),
    ("chatmail-metadata.service", ON_DEMAND),
    ("chatmail-web.service", ON_DEMAND),
    ("chatmail-mxdeliv.service", ON_DEMAND),
    ("chatmail-expire.timer", TIMER),
    ("dovecot.service", DAEMON),
    ("nginx.service", DAEMON),
)
POSTFIX, POSTFIX_INSTANCE = "postfix.service", "postfix@-.service"
SHOWN = (*(unit for unit, _kind in UNITS), POSTFIX, POSTFIX_INSTANCE)  # asked of systemctl
REAPER_UNIT = "chatmail-expire.service"


def unit_state(kind: str, props: Mapping[str, str]) -> tuple[State, str]:
    """A unit's state and one word or two for it, from `systemctl show` properties.

    Not installed or failed is BROKEN; a stopped socket or timer is DEGRADED, a stopped
    daemon BROKEN; a socket-activated service is fine stopped (it starts on first use)."""
    load, active = props.get("LoadState", ""), props.get("ActiveState", "")
    if load != "loaded":
        return State.BROKEN, f"not loaded ({load or 'unknown'})"
    if active == "failed":
        return State.BROKEN, f"failed ({props.get('Result') or 'unknown'})"
    if active in ("active", "reloading", "activating"):
        return State.OK, active
    if kind == ON_DEMAND and active in ("inactive", "deactivating"):
        return State.OK, "idle"
    stopped = f"stopped ({active or 'unknown'})"
    return (State.BROKEN if kind == DAEMON else State.DEGRADED), stopped


def judged_units(props: Mapping[str, Mapping[str, str]]) -> tuple[tuple[str, str], ...]:
    """UNITS and Postfix's unit that runs its master: on Debian 12 postfix.service is a
    wrapper that has exited (RemainAfterExit=) and the master runs in postfix@-.service; on
    Debian 13 postfix.service runs it."""
    wrapper = props.get(POSTFIX, {}).get("SubState") == "exited"
    return (*UNITS, (POSTFIX_INSTANCE if wrapper else POSTFIX, DAEMON))


def judge_units(props: Mapping[str, Mapping[str, str]], errors: Mapping[str, str | None]) -> Check:
    """One check for all units (`judged_units`): the worst state, each unit not OK named with
    its last error line (`errors`, already redacted)."""
    units = judged_units(props)
    states = {unit: unit_state(kind, props.get(unit, {})) for unit, kind in units}
    bad = [(unit, state, word) for unit, (state, word) in states.items() if state > State.OK]
    worst = max((state for _unit, state, _word in bad), default=State.OK)
    if not bad:
        text = f"{len(units)} units active or idle"
    else:
        parts = []
        for unit, _state, word in bad:
            error = errors.get(unit)
            parts.append(f"{unit} {word}" + (f": {error}" if error else ""))
        text = "; ".join(parts)
    data = {unit: props.get(unit, {}).get("ActiveState", "") for unit, _kind in units}
    return Check("units", worst, text, data)


def days_left(not_after: float, now: float) -> int:
    """Whole days until `not_after` (negative once it has passed)."""
    return math.floor((not_after - now) / DAY)


def judge_certificate(not_after: float, now: float) -> Check:
    left = days_left(not_after, now)
    data = {"days_left": left}
    if not_after <= now:
        return Check("certificate", State.BROKEN, f"expired {-left} days ago", data)
    if left < CERT_DEGRADED_DAYS:
        return Check("certificate", State.DEGRADED, f"{left} days left (renewal failing?)", data)
    return Check("certificate", State.OK, f"{left} days left", data)


def judge_postfix_queue(active: int, deferred: int) -> Check:
    data = {"active": active, "deferred": deferred}
    text = f"{active} active, {deferred} deferred"
    state = State.DEGRADED if deferred >= DEFERRED_DEGRADED else State.OK
    return Check("postfix-queue", state, text, data)


def judge_notify_queue(
    count: int, oldest_age: float | None, damaged: int, limit: int, give_up_after: float
) -> Check:
    """Full (new notifications dropped) or one older than `give_up_after` (the notifier is
    not working it off) is DEGRADED; the limits are [metadata]'s."""
    data = {"count": count, "oldest_seconds": oldest_age, "damaged": damaged}
    text = f"{count} pending"
    if oldest_age is not None:
        text += f", oldest {_duration(oldest_age)}"
    state = State.OK
    if count >= limit:
        state, text = State.DEGRADED, text + f" (full: {limit})"
    if oldest_age is not None and oldest_age > give_up_after:
        state, text = State.DEGRADED, text + " (older than notify_give_up_after)"
    if damaged:
        state, text = State.DEGRADED, text + f", {damaged} damaged"
    return Check("notify-queue", state, text, data)


def judge_disk(
    free_bytes: int,
    free_inodes: int,
    total_inodes: int,
    min_free_disk: int,
    refusal: str | None,
) -> Check:
    """Headroom of the mailboxes file system: no space or inode left is BROKEN; account
    creation refused by auth's headroom rule (`refusal`) or few inodes is DEGRADED."""
    inode_percent = 100 * free_inodes / total_inodes if total_inodes else 100.0
    data = {
        "free_bytes": free_bytes,
        "min_free_disk": min_free_disk,
        "free_inodes": free_inodes,
        "free_inodes_percent": round(inode_percent, 1),
        "creation_refused": refusal,
    }
    text = (
        f"{_size(free_bytes)} free (creation needs {_size(min_free_disk)}), "
        f"{inode_percent:.0f}% inodes free"
    )
    if free_bytes <= 0 or (total_inodes and free_inodes <= 0):
        return Check("disk", State.BROKEN, text + "; full", data)
    if refusal is not None:
        return Check("disk", State.DEGRADED, text + f"; account creation refused: {refusal}", data)
    if inode_percent < MIN_FREE_INODES_PERCENT:
        return Check("disk", State.DEGRADED, text + "; few inodes left", data)
    return Check("disk", State.OK, text, data)


def judge_dns(statuses: Sequence[tuple[str, bool, str]]) -> Check:
    """`statuses`: (record name and type, required, status) from dnszone's check. A required
    record missing or different, or a failed look-up, is DEGRADED."""
    failed = [name for name, required, status in statuses if required and status in _WRONG]
    errors = [name for name, _required, status in statuses if status == "error"]
    weak = [name for name, required, status in statuses if not required and status in _WRONG]
    data = {"records": len(statuses), "failed": failed, "errors": errors, "recommended": weak}
    if failed or errors:
        parts = []
        if failed:
            parts.append("wrong or missing: " + _some(failed))
        if errors:
            parts.append(f"look-up failed for {len(errors)} of {len(statuses)} records")
        return Check("dns", State.DEGRADED, "; ".join(parts), data)
    text = f"{len(statuses)} records as expected"
    if weak:
        text += f" ({len(weak)} recommended missing)"
    return Check("dns", State.OK, text, data)


_WRONG = ("missing", "different")

_SUMMARY = re.compile(
    r"(?P<dry>dry run: )?scanned (?P<scanned>\d+) accounts, (?:would remove|removed) "
    r"(?P<accounts>\d+) accounts and (?P<messages>\d+) messages \((?P<bytes>\d+) bytes\) "
    r"in [\d.]+ s(?:; (?P<left>\d+) non-empty directories without password left)?"
    r"(?:; (?P<errors>\d+) errors)?$"
)


def parse_reaper_summary(line: str) -> dict[str, int | bool] | None:
    """The numbers of chatmail-expire's summary line (expire/report.py), None if `line` is
    not one."""
    match = _SUMMARY.fullmatch(line.strip())
    if not match:
        return None
    return {
        "dry_run": bool(match["dry"]),
        "accounts_scanned": int(match["scanned"]),
        "accounts_removed": int(match["accounts"]),
        "messages_removed": int(match["messages"]),
        "bytes_removed": int(match["bytes"]),
        "errors": int(match["errors"] or 0),
    }


def judge_reaper(
    props: Mapping[str, str], finished: float | None, summary: dict | None, now: float
) -> Check:
    """The last run of chatmail-expire.service: failed or older than REAPER_MAX_AGE is
    DEGRADED; not run yet is OK (the timer's state is in the units check)."""
    data: dict[str, object] = {"finished": finished, "result": props.get("Result", "")}
    if summary:
        data.update(summary)
    if finished is None:
        return Check("reaper", State.OK, "not run yet", data)
    text = f"last run {_duration(now - finished)} ago"
    if summary:
        text += (
            f": removed {summary['accounts_removed']} accounts, "
            f"{summary['messages_removed']} messages ({_size(int(summary['bytes_removed']))})"
        )
    result = props.get("Result", "")
    if result != "success":
        return Check("reaper", State.DEGRADED, f"{text}; failed ({result or 'unknown'})", data)
    if now - finished > REAPER_MAX_AGE:
        return Check("reaper", State.DEGRADED, f"{text}; not run for two days", data)
    return Check("reaper", State.OK, text, data)


def _some(names: Sequence[str], most: int = 3) -> str:
    """The first `most` names, and how many more."""
    shown = ", ".join(names[:most])
    return shown if len(names) <= most else f"{shown} and {len(names) - most} more"


def _duration(seconds: float) -> str:
    seconds = max(seconds, 0)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * DAY:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / DAY:.0f} days"


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
