"""Command line of chatmail-status: the relay's health; exit 0 healthy, 1 degraded, 2 broken.

It only reads. It runs as root, or as a member of the `chatmail-status` group: then the
checks that need root (docs/operations.md) say "unknown" and do not count.
"""

from __future__ import annotations

import grp
import os
import sys
import time
from collections.abc import Callable

from chatmail_services.cli import command_parser

from . import gather
from .model import Check, State, exit_code, overall
from .redact import redact
from .render import as_json, as_text

GROUP = "chatmail-status"
EX_NOPERM = 77
CHECKS = (
    "units",
    "config",
    "certificate",
    "dns",
    "postfix-queue",
    "notify-queue",
    "disk",
    "accounts",
    "reaper",
)


def build_parser():
    parser = command_parser("chatmail-status", "Tell whether the chatmail relay is healthy.")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--skip",
        metavar="CHECK",
        action="append",
        default=[],
        choices=CHECKS,
        help=f"leave a check out (repeatable): {', '.join(CHECKS)}",
    )
    parser.add_argument(
        "--postfix-queue-dir",
        metavar="PATH",
        default=gather.POSTFIX_QUEUE_DIR,
        help=f"Postfix's queue_directory (default: {gather.POSTFIX_QUEUE_DIR})",
    )
    return parser


def permitted(euid: int, groups: list[int], group_gid: int | None) -> bool:
    """Root, or a member of the chatmail-status group (`group_gid`: None if it is missing)."""
    return euid == 0 or (group_gid is not None and group_gid in groups)


def _group_gid() -> int | None:
    try:
        return grp.getgrnam(GROUP).gr_gid
    except KeyError:
        return None


def guarded(name: str, run: Callable[[], Check]) -> Check:
    """`run()`; an unexpected error is a DEGRADED check, never an OK one (fail closed)."""
    try:
        return run()
    except Exception as exc:
        return Check(
            name, State.DEGRADED, f"check failed: {type(exc).__name__}: {redact(str(exc))}"
        )


def run_checks(
    config_path: str | None, skip: set[str], queue_dir: str, privileged: bool, now: float
) -> list[Check]:
    """Every check in CHECKS order; skipped ones are UNKNOWN."""
    config_check, config = gather.check_config(config_path)
    runs: dict[str, Callable[[], Check]] = {
        "units": lambda: gather.check_units(privileged),
        "config": lambda: config_check,
        "postfix-queue": lambda: gather.check_postfix_queue(queue_dir, privileged),
        "reaper": lambda: gather.check_reaper(now, privileged),
    }
    if config is not None:
        runs |= {
            "certificate": lambda: gather.check_certificate(config, now, privileged),
            "dns": lambda: gather.check_dns(config, privileged),
            "notify-queue": lambda: gather.check_notify_queue(config, now, privileged),
            "disk": lambda: gather.check_disk(config, privileged),
            "accounts": lambda: gather.check_accounts(config, privileged),
        }
    checks = []
    for name in CHECKS:
        if name in skip:
            checks.append(Check(name, State.UNKNOWN, "skipped"))
        elif name not in runs:
            checks.append(Check(name, State.UNKNOWN, "not checked: configuration invalid"))
        else:
            checks.append(guarded(name, runs[name]))
    return checks


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    euid = os.geteuid()
    if not permitted(euid, os.getgroups(), _group_gid()):
        print(f"chatmail-status: run as root or as a member of the {GROUP} group", file=sys.stderr)
        return EX_NOPERM
    checks = run_checks(args.config, set(args.skip), args.postfix_queue_dir, euid == 0, time.time())
    sys.stdout.write(as_json(checks) if args.json else as_text(checks))
    return exit_code(overall(checks))


if __name__ == "__main__":
    sys.exit(main())
