"""chatmail-metrics-collect: what an admin graphs beside the services' own metrics, read from
Postfix, Dovecot and the file system once a minute (chatmail-metrics-collect.timer) and
written as `chatmail-collect.prom` in [chatmail] metrics_dir.

- Postfix's queues: the messages in each queue directory (files, as `postqueue` lists them);
- Dovecot's IMAP sessions: the lines of `doveadm who -1` (one per connection);
- the TLS certificate's end of validity ([tls] cert_file or its default);
- the accounts: the directories in mailboxes_dir.

A source that cannot be read is left out and its `chatmail_collect_success` is 0: a missing
number is never shown as 0.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from cryptography import x509

from .cli import command_parser, load_or_exit
from .config import Config
from .mailconfig import tls_paths
from .metrics import Registry
from .status.gather import count_files, not_after
from .textfile import textfile_path, write_atomically

POSTFIX_QUEUE_DIR = "/var/spool/postfix"
POSTFIX_QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")
DOVEADM_TIMEOUT = 10.0


def postfix_queues(queue_dir: str) -> dict[str, int]:
    """Messages per queue (OSError when a queue directory cannot be read)."""
    return {name: count_files(Path(queue_dir) / name) for name in POSTFIX_QUEUES}


def count_who_lines(output: str) -> int:
    """Connections in `doveadm who -1` output: the lines after the header, non-empty."""
    lines = [line for line in output.splitlines() if line.strip()]
    return max(0, len(lines) - 1) if lines and lines[0].split()[:1] == ["username"] else len(lines)


def imap_sessions(dovecot_config: str = "") -> int:
    """IMAP connections Dovecot's anvil knows (RuntimeError when doveadm fails); doveadm reads
    `dovecot_config` if given, else Dovecot's own configuration."""
    config = ["-c", dovecot_config] if dovecot_config else []
    try:
        result = subprocess.run(
            ["doveadm", *config, "who", "-1"],
            capture_output=True,
            text=True,
            timeout=DOVEADM_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"doveadm who: {exc}") from None
    if result.returncode != 0:
        raise RuntimeError(f"doveadm who exited {result.returncode}")
    return count_who_lines(result.stdout)


def certificate_expiry(path: str) -> float:
    """The end of validity of the first certificate in `path` (OSError, ValueError)."""
    return not_after(x509.load_pem_x509_certificate(Path(path).read_bytes()))


def accounts(mailboxes_dir: str) -> int:
    """Entries in mailboxes_dir that are directories (one per account)."""
    with os.scandir(mailboxes_dir) as entries:
        return sum(1 for entry in entries if entry.is_dir(follow_symlinks=False))


def collect(
    config: Config,
    queue_dir: str,
    sessions: Callable[[], int] = imap_sessions,
    now: Callable[[], float] = time.time,
) -> str:
    """The rendered file: each source's values, or only its success 0 when it failed."""
    registry = Registry()
    success = registry.gauge(
        "chatmail_collect_success", "1 if the source was read on the last run", ("source",)
    )

    def read(name: str, reader: Callable[[], object]) -> object | None:
        try:
            value = reader()
        except (OSError, RuntimeError, ValueError):
            success.set(0, name)
            return None
        success.set(1, name)
        return value

    counts = read("postfix", lambda: postfix_queues(queue_dir))
    if isinstance(counts, dict):
        queue = registry.gauge(
            "chatmail_postfix_queue_messages", "messages in Postfix's queue, by queue", ("queue",)
        )
        for name, count in counts.items():
            queue.set(count, name)
    single = [
        ("dovecot", sessions, "chatmail_dovecot_imap_sessions", "IMAP connections (doveadm who)"),
        (
            "certificate",
            lambda: certificate_expiry(tls_paths(config)[0]),
            "chatmail_tls_certificate_expiry_timestamp_seconds",
            "end of validity of the relay's TLS certificate (UTC epoch)",
        ),
        (
            "accounts",
            lambda: accounts(config.chatmail.mailboxes_dir),
            "chatmail_accounts",
            "accounts (directories in mailboxes_dir)",
        ),
    ]
    for source, reader, metric, help_text in single:
        value = read(source, reader)
        if isinstance(value, int | float):
            registry.gauge(metric, help_text).set(value)
    registry.gauge(
        "chatmail_collect_last_run_timestamp_seconds", "when the collector last ran (UTC epoch)"
    ).set(now())
    return registry.render()


def main(argv: list[str] | None = None) -> int:
    parser: argparse.ArgumentParser = command_parser(
        "chatmail-metrics-collect",
        "Write Postfix's queue sizes, Dovecot's IMAP sessions, the certificate's expiry and the "
        "number of accounts as chatmail-collect.prom in [chatmail] metrics_dir.",
    )
    parser.add_argument(
        "--queue-dir", default=POSTFIX_QUEUE_DIR, metavar="DIR", help="Postfix's queue_directory"
    )
    parser.add_argument(
        "--dovecot-config", default="", metavar="PATH", help="doveadm's -c (default: Dovecot's)"
    )
    parser.add_argument("--print", action="store_true", help="print the file instead of writing")
    args = parser.parse_args(argv)
    config = load_or_exit(args.config)
    text = collect(config, args.queue_dir, lambda: imap_sessions(args.dovecot_config))
    if args.print:
        sys.stdout.write(text)
        return 0
    path = textfile_path(config.chatmail.metrics_dir, "chatmail-collect")
    if path is None or not path.parent.is_dir():
        where = path.parent if path else "[chatmail] metrics_dir (empty)"
        print(f"chatmail-metrics-collect: {where} does not exist, nothing written", file=sys.stderr)
        return 0
    try:
        write_atomically(path, text)
    except OSError as exc:
        print(f"chatmail-metrics-collect: {path}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0
