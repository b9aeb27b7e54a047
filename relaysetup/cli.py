"""chatmail-setup: render the relay's configuration from chatmail.ini and install it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from chatmail_services import dovecotversion
from chatmail_services.cli import command_parser, load_or_exit
from chatmail_services.mailconfig import production_values, tls_paths
from chatmail_services.templating import TEMPLATES

from .apply import apply_plan, owner_ids, read_current, target
from .diff import plan_diff
from .model import Desired
from .parts import Context, SetupError, build_parts
from .plan import make_plan

DEFAULT_MAIL_USER = "vmail"  # the package's mail user (debian/chatmail-services.postinst)


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "chatmail-setup",
        "Render the Postfix, Dovecot, DKIM, TLS and coturn configuration of a "
        "chatmail relay from chatmail.ini and install it: a diff, backups, checks, reloads.",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print what would change; change nothing"
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        help="render into DIR (as DIR/etc/...) for inspection: no backups, checks or reloads",
    )
    where.add_argument(
        "--root",
        metavar="DIR",
        type=Path,
        help="set up the system tree under DIR instead of / (no checks, reloads or owners)",
    )
    parser.add_argument(
        "--templates",
        metavar="DIR",
        type=Path,
        help="take the templates DIR has (postfix/main.cf, ...) instead of the package's",
    )
    parser.add_argument(
        "--mail-user",
        metavar="USER",
        help=f"the mail user (default: [auth] mail_user, else {DEFAULT_MAIL_USER})",
    )
    parser.add_argument(
        "--dovecot-version",
        metavar="VERSION",
        help="render for this Dovecot version (default: what `dovecot --version` says)",
    )
    return parser


def detect_dovecot_version() -> str | None:
    """`dovecot --version` of the installed Dovecot, or None."""
    try:
        return dovecotversion.version_text() or None
    except (OSError, RuntimeError):
        return None


def fail(problems: list[str] | tuple[str, ...]) -> int:
    for problem in problems:
        print(f"chatmail-setup: {problem}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = load_or_exit(args.config)
    for warning in config.warnings:
        print(f"chatmail-setup: warning: {warning}", file=sys.stderr)
    root = args.out or args.root or Path("/")
    system = args.out is None and args.root is None
    mail_user = args.mail_user or config.auth.mail_user or DEFAULT_MAIL_USER
    cert, key = tls_paths(config)
    try:
        values = production_values(config, cert, key, mail_user)
    except KeyError:
        return fail([f"no user {mail_user!r} (the package makes vmail; or set --mail-user)"])

    def read_text(path: str) -> str | None:
        try:
            return target(root, path).read_text()
        except FileNotFoundError:
            return None

    ctx = Context(
        read_text=read_text,
        exists=lambda path: target(root, path).exists(),
        mail_user=mail_user,
        values=values,
        dovecot_version=args.dovecot_version or detect_dovecot_version(),
        templates=args.templates or TEMPLATES,
        system=system,
    )
    try:
        parts = build_parts(config, ctx)
    except SetupError as exc:
        return fail(exc.args)
    except (OSError, KeyError) as exc:
        return fail([str(exc)])
    ids = {}
    if system:
        problems = []
        for desired in (d for part in parts for d in part.files):
            try:
                ids[desired.path] = owner_ids(desired)
            except KeyError as exc:
                problems.append(exc.args[0])
        if problems:
            return fail(problems)

    def ids_of(desired: Desired) -> tuple[int, int] | None:
        return ids.get(desired.path)

    plan = make_plan(parts, read_current(root), ids_of)
    sys.stdout.write(plan_diff(plan))
    if args.dry_run or not plan.changes:
        return 0
    problems = apply_plan(
        plan, root, ids_of, checks=system, reloads=system, backups=args.out is None
    )
    if problems:
        return fail(problems)
    where = f" under {root}" if not system else ""
    done = ", ".join(part.name for part in plan.changed_parts())
    print(f"chatmail-setup: done{where}: {done}" + (" (checked, reloaded)" if system else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
