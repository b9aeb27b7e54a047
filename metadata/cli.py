"""Command line of chatmail-metadata: `serve`."""

from __future__ import annotations

import argparse
import sys

from chatmail_services import dictserver
from chatmail_services.cli import add_config_argument, load_or_exit, log_config_warnings
from chatmail_services.config import EX_CONFIG
from chatmail_services.logsetup import setup_logging

from .serverkeys import SettingsError
from .session import Session, settings_from_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="chatmail-metadata",
        description="Dovecot IMAP METADATA responder: push device tokens and server keys.",
    )
    add_config_argument(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser("serve", help="serve Dovecot's dict protocol (socket activation)")
    serve.add_argument("--socket", metavar="PATH", help="socket path without socket activation")
    args = parser.parse_args(argv)
    config = load_or_exit(args.config)
    setup_logging(config.chatmail.log_level, "chatmail.metadata")
    log_config_warnings(config)
    try:
        settings = settings_from_config(config)
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EX_CONFIG
    socket_path = args.socket or config.metadata.socket
    return dictserver.serve(lambda: Session(settings), socket_path, "metadata")
