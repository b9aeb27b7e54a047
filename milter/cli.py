"""Command line of chatmail-milter (placeholder until its issue lands)."""

from __future__ import annotations

import argparse
import sys

from chatmail_services.cli import add_config_argument, load_or_exit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chatmail-milter")
    add_config_argument(parser)
    parser.add_argument("rest", nargs="*")
    args = parser.parse_args(argv)
    load_or_exit(args.config)
    print("chatmail-milter: not yet implemented", file=sys.stderr)
    return 1
