"""The reaper's output: one summary line, a JSON object, a Prometheus textfile."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

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


def prometheus_text(stats: Stats, seconds: float, dry_run: bool, finished: float) -> str:
    """Gauges describing the last run, in the node exporter's textfile format."""
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
    lines = []
    for name, help_text, value in gauges:
        metric = f"chatmail_expire_{name}"
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} gauge", f"{metric} {value}"]
    metric = "chatmail_expire_messages_removed"
    lines += [f"# HELP {metric} message files removed, by rule", f"# TYPE {metric} gauge"]
    lines += [f'{metric}{{rule="{rule}"}} {n}' for rule, n in stats.messages_by_rule.items()]
    return "\n".join(lines) + "\n"


def write_atomically(path: str, text: str) -> None:
    """Write `text` to `path` via a temporary file in the same directory and a rename."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
