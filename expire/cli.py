"""Command line of chatmail-expire: one pass of the Maildir reaper.

Exit status: 0 done, 1 some entries could not be processed (each reported on stderr),
78 bad configuration.
"""

from __future__ import annotations

import argparse
import sys
import time

from chatmail_services.cli import command_parser, load_or_exit, log_config_warnings
from chatmail_services.config import Config
from chatmail_services.logsetup import setup_logging
from chatmail_services.textfile import textfile_path

from . import report
from .rules import Policy
from .scan import run

_PAST = {"delete": "deleted", "remove": "removed", "leave": "left"}


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "chatmail-expire",
        "Delete expired mail and inactive accounts under mailboxes_dir "
        "(a dry run unless --remove).",
    )
    parser.add_argument("--remove", action="store_true", help="really delete (default: dry run)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument(
        "--quiet", action="store_true", help="print no summary (errors still go to stderr)"
    )
    parser.add_argument("--verbose", action="store_true", help="print every action, with addresses")
    parser.add_argument(
        "--textfile",
        metavar="PATH",
        help="write Prometheus metrics to PATH (atomically; default for a full run with "
        "--remove: chatmail-expire.prom in [chatmail] metrics_dir)",
    )
    parser.add_argument(
        "--account",
        metavar="ADDRESS",
        action="append",
        help="only this account (repeatable): Dovecot's quota warning runs it at 75 %%",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = load_or_exit(args.config)
    setup_logging(config.chatmail.log_level, "chatmail.expire")
    log_config_warnings(config)
    dry_run = not args.remove

    def on_error(account: str, path: str, exc: OSError) -> None:
        shown = account if args.verbose else ("<account>" if account else "")
        where = "/".join(p for p in (shown, path) if p) or config.chatmail.mailboxes_dir
        print(f"chatmail-expire: {where}: {exc.strerror or exc}", file=sys.stderr)

    def on_action(account: str, verb: str, what: str) -> None:
        done = f"would {verb}" if dry_run else _PAST[verb]
        print(f"{done} {what} [{account}]")

    started = time.monotonic()
    stats = run(
        config.chatmail.mailboxes_dir,
        Policy.from_config(config),
        time.time(),
        remove=args.remove,
        on_error=on_error,
        on_action=on_action if args.verbose else None,
        accounts=[a.lower() for a in args.account] if args.account else None,
    )
    seconds = time.monotonic() - started
    if args.json:
        print(report.as_json(stats, seconds, dry_run))
    elif not args.quiet:
        print(report.summary_line(stats, seconds, dry_run))
    textfile = args.textfile or default_textfile(config, args)
    if textfile:
        try:
            report.write_textfile(textfile, stats, seconds, dry_run, time.time())
        except OSError as exc:
            print(f"chatmail-expire: {textfile}: {exc.strerror or exc}", file=sys.stderr)
            if args.textfile:
                return 1
    return 1 if stats.errors else 0


def default_textfile(config: Config, args: argparse.Namespace) -> str | None:
    """`<[chatmail] metrics_dir>/chatmail-expire.prom` for a full run that removes (the timer's),
    when that directory exists; a dry run or an `--account` run leaves the file alone."""
    path = textfile_path(config.chatmail.metrics_dir, "chatmail-expire")
    if path is None or not args.remove or args.account or not path.parent.is_dir():
        return None
    return str(path)
