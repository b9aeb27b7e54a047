"""Command line of chatmail-mxsend: `serve`, Postfix's LMTP transport for remote mail."""

from __future__ import annotations

import argparse
import logging

from chatmail_services import dictserver, dnsquery
from chatmail_services.activation import inherited_sockets, notify_ready
from chatmail_services.cli import command_parser, load_or_exit, log_config_warnings
from chatmail_services.config import Config
from chatmail_services.logsetup import setup_logging

from .deliver import Sender, Settings
from .server import serve
from .skip import SkipTable


def sender_from_config(config: Config) -> Sender:
    """The sender as `[federation]` and the milter's `[dkim]` resolver settings say."""
    fed = config.federation
    settings = Settings(
        https=fed.https,
        return_socket=fed.return_socket,
        ca_file=fed.ca_file,
        tls_policy=fed.tls_policy,
    )
    resolver = dnsquery.make_resolver(config.dkim.resolver, config.dkim.dns_timeout)
    return Sender(settings, resolver, SkipTable(fed.https_skip))


def cmd_serve(config: Config, socket_path: str) -> int:
    log = logging.getLogger("chatmail.mxsend")
    listeners = inherited_sockets()
    if len(listeners) > 1:
        log.error("expected one inherited socket, got %d", len(listeners))
        return 1
    if listeners:
        listener = listeners[0]
        log.info("serving the inherited socket")
    else:
        try:
            listener = dictserver.bind(socket_path)
        except OSError as exc:
            log.error("cannot listen on %s: %s", socket_path, exc.strerror)
            return 1
        log.info("listening on %s", socket_path)
    notify_ready()
    serve(
        listener,
        sender_from_config(config),
        config.chatmail.mail_domain,
        config.chatmail.max_message_size,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser: argparse.ArgumentParser = command_parser(
        "chatmail-mxsend",
        "Postfix's transport for remote mail: HTTPS (/mxdeliv) first, back to SMTP otherwise.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve_cmd = sub.add_parser("serve", help="serve LMTP for Postfix (socket activation)")
    serve_cmd.add_argument("--socket", metavar="PATH", help="socket path without activation")
    args = parser.parse_args(argv)
    config = load_or_exit(args.config)
    setup_logging(config.chatmail.log_level, "chatmail.mxsend")
    log_config_warnings(config)
    return cmd_serve(config, args.socket or config.federation.send_socket)
