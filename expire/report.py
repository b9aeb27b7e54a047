"""The reaper's output: one summary line, a JSON object, a Prometheus textfile (the shared
renderer and writer of chatmail_services.metrics and .textfile, as every service)."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path

from chatmail_services.metrics import Registry
from chatmail_services.textfile import write_atomically

from .scan import Stats


def summary_line(stats: Stats, seconds: float, dry_run: bool) -> str:
    """One line for the journal; no addresses."""
    verb = "would remove" if dry_run else "removed"
    line = (
        f"{'dry run: ' if dry_run else ''}scanned {stats.accounts_scanned} accounts, "
        f"{verb} {stats.accounts_removed} accounts and {stats.messages_removed} messages "
        f"({stats.bytes_removed} bytes) in {seconds:.2f} s"
    )
    if stats.dirs_without_password:
        line += f"; {stats.dirs_without_password} non-empty directories without password left"
    if stats.errors:
        line += f"; {stats.errors} errors"
    return line


def as_json(stats: Stats, seconds: float, dry_run: bool) -> str:
    return json.dumps({"dry_run": dry_run, "seconds": round(seconds, 3), **asdict(stats)})


LAST_SUCCESS = "chatmail_expire_last_success_timestamp_seconds"
_LAST_SUCCESS_LINE = re.compile(rf"^{LAST_SUCCESS} ([0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?)$", re.M)


def previous_success(text: str) -> float | None:
    """The last success time a previous file recorded (None: none, or not a plain number)."""
    match = _LAST_SUCCESS_LINE.search(text)
    return float(match[1]) if match else None


def prometheus_text(
    stats: Stats, seconds: float, dry_run: bool, finished: float, last_success: float | None = None
) -> str:
    """Gauges describing the last run, in the node exporter's textfile format (the shared
    renderer). A run without errors is a success at `finished`; otherwise `last_success`
    (from the previous file) is kept, or left out when there was none."""
    registry = Registry()
    gauges = [
        ("last_run_timestamp_seconds", "when the last run finished (UTC epoch)", finished),
        ("last_run_duration_seconds", "how long the last run took", round(seconds, 3)),
        ("last_run_dry", "1 if the last run was a dry run (nothing deleted)", int(dry_run)),
        ("accounts_scanned", "account directories scanned", stats.accounts_scanned),
        ("accounts_removed", "inactive accounts removed", stats.accounts_removed),
        ("bytes_removed", "bytes of files removed", stats.bytes_removed),
        ("empty_dirs_removed", "empty directories without password removed",
         stats.empty_dirs_removed),
        ("dirs_without_password", "non-empty directories without password left",
         stats.dirs_without_password),
        ("errors", "entries that could not be processed", stats.errors),
    ]  # fmt: skip
    for name, help_text, value in gauges:
        registry.gauge(f"chatmail_expire_{name}", help_text).set(value)
    by_rule = registry.gauge(
        "chatmail_expire_messages_removed", "message files removed, by rule", ("rule",)
    )
    for rule, count in stats.messages_by_rule.items():
        by_rule.set(count, rule)
    success = finished if not stats.errors and not dry_run else last_success
    if success is not None:
        registry.gauge(
            LAST_SUCCESS, "when the last run without errors that really removed finished"
        ).set(success)
    return registry.render()


def write_textfile(path: str, stats: Stats, seconds: float, dry_run: bool, finished: float) -> None:
    """Replace the metrics file at `path`, keeping the last success time of the one there."""
    try:
        old = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        old = ""
    text = prometheus_text(stats, seconds, dry_run, finished, previous_success(old))
    write_atomically(path, text)
