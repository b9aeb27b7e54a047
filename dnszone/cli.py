"""Command line of chatmail-dns: print the zone, check it in DNS, print the MTA-STS policy."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from chatmail_services import dnsquery
from chatmail_services.cli import build_or_exit, command_parser, load_or_exit
from chatmail_services.config import Config, _nameservers, _positive_float

from . import mtasts
from .check import check_zone
from .compare import ERROR
from .records import config_records, zone_domain
from .zonefile import config_zone_text

EX_TEMPFAIL = 75


def _argtype(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type from a config parser, so the syntax is the same in both places."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__.strip("_")
    return convert


def _parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "chatmail-dns",
        "Print the DNS records of the relay (default), check them, or print the MTA-STS policy.",
    )
    what = parser.add_mutually_exclusive_group()
    what.add_argument(
        "--check", action="store_true", help="look the records up and report each one"
    )
    what.add_argument("--mta-sts-policy", action="store_true", help="print the MTA-STS policy file")
    parser.add_argument(
        "--resolver",
        type=_argtype(_nameservers),
        metavar="IP[:PORT]",
        help="with --check: ask this DNS server (default: [dkim] resolver, else the system's)",
    )
    parser.add_argument(
        "--timeout",
        type=_argtype(_positive_float),
        metavar="SECONDS",
        help="with --check: seconds one look-up may take (default: [dkim] dns_timeout)",
    )
    return parser


def _or_exit(make: Callable[[Config], Any], config: Config) -> Any:
    """`make(config)`, or one error line and exit 78 when the config cannot give a zone."""
    return build_or_exit(make, config, "chatmail-dns")


def print_zone(config: Config) -> int:
    sys.stdout.write(_or_exit(config_zone_text, config))
    return 0


def check_command(config: Config, args: argparse.Namespace) -> int:
    """One line per record; 1 if a required one is missing or different, 75 if DNS failed."""
    records = _or_exit(config_records, config)
    nameservers = args.resolver if args.resolver else config.dkim.resolver
    timeout = args.timeout if args.timeout is not None else config.dkim.dns_timeout
    findings = check_zone(dnsquery.make_resolver(nameservers, timeout), records)
    for finding in findings:
        print(finding.line())
    if any(f.failed for f in findings):
        return 1
    if any(f.status == ERROR for f in findings):
        return EX_TEMPFAIL
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.check and (args.resolver or args.timeout is not None):
        parser.error("--resolver and --timeout go with --check")
    config = load_or_exit(args.config)
    for warning in config.warnings:
        print(f"chatmail-dns: warning: {warning}", file=sys.stderr)
    _or_exit(zone_domain, config)
    if args.mta_sts_policy:
        sys.stdout.write(mtasts.config_policy_text(config))
        return 0
    if args.check:
        return check_command(config, args)
    return print_zone(config)


if __name__ == "__main__":
    sys.exit(main())
