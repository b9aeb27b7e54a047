"""Command line of chatmail-milter: `serve` (the daemon) and `check` (one message, offline)."""

from __future__ import annotations

import argparse
import functools
import logging
import sys

from chatmail_services.activation import inherited_sockets, notify_ready, notify_stopping
from chatmail_services.cli import add_config_argument, load_or_exit, log_config_warnings
from chatmail_services.config import Config
from chatmail_services.logsetup import setup_logging

from . import mime, policy
from .accounts import enforcement_lookup
from .lifecycle import run_until_signal

EX_USAGE = 64


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatmail-milter", description="Encryption-checking milter for Postfix."
    )
    add_config_argument(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the milter (socket-activated or on --socket)")
    serve.add_argument(
        "--socket",
        metavar="unix:PATH",
        help="listen here when not socket-activated (default: [milter] socket)",
    )
    check = sub.add_parser("check", help="decide about one message file and print the verdict")
    check.add_argument("--incoming", action="store_true", help="as received from another MTA")
    check.add_argument("--sender", required=True, metavar="ADDR", help="envelope MAIL FROM")
    check.add_argument("--login", metavar="ADDR", help="SASL login (outgoing; default: the sender)")
    check.add_argument(
        "--rcpt", required=True, action="append", metavar="ADDR", help="envelope RCPT TO"
    )
    check.add_argument("file", metavar="FILE", help="the message, as submitted (CRLF)")
    return parser


def check_command(config: Config, args: argparse.Namespace) -> int:
    """Print `accept` or `reject <code> <xcode> <text>` (reason on stderr); exit 0 or 1."""
    try:
        with open(args.file, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        print(f"chatmail-milter: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    login = None if args.incoming else (args.login or args.sender)
    envelope = policy.Envelope(
        mime.envelope_address(args.sender),
        tuple(mime.envelope_address(r) for r in args.rcpt),
        login,
    )
    lookup = enforcement_lookup(config.chatmail.mailboxes_dir, config.chatmail.mail_domain)
    verdict = policy.decide(mime.parse_message(data), envelope, lookup)
    print(verdict.describe())
    print(f"reason: {verdict.reason}", file=sys.stderr)
    if verdict.chgfrom is not None:
        print(f"envelope sender would be changed to {verdict.chgfrom}", file=sys.stderr)
    return 0 if verdict.accepted else 1


def connection_string(cli_socket: str | None, config: Config) -> tuple[str, list]:
    """libmilter's connection string: `fd:3` under socket activation, else a unix socket.

    Also returns the inherited socket objects, which must stay referenced while serving.
    """
    sockets = inherited_sockets()
    if sockets:
        if len(sockets) != 1 or sockets[0].fileno() != 3:
            raise SystemExit("chatmail-milter: expected exactly one inherited socket on fd 3")
        return "fd:3", sockets
    conn = cli_socket or f"unix:{config.milter.socket}"
    if not conn.startswith("unix:"):
        raise SystemExit(f"chatmail-milter: --socket must be unix:PATH, got {conn!r}")
    return conn, []


def serve_command(config: Config, args: argparse.Namespace) -> int:
    """Run the milter until a stop signal (SIGTERM, SIGINT, SIGHUP) or libmilter stops."""
    import Milter

    from .adapter import ChatmailMilter, Service
    from .ratelimit import RateLimiter

    log = setup_logging(config.chatmail.log_level, "chatmail.milter")
    log_config_warnings(config)
    service = Service(
        limiter=RateLimiter(
            config.milter.max_user_send_per_minute, config.milter.max_user_send_burst_size
        ),
        enforces_encryption=enforcement_lookup(
            config.chatmail.mailboxes_dir, config.chatmail.mail_domain
        ),
        max_message_size=config.chatmail.max_message_size,
        spool_threshold=config.milter.spool_threshold,
        spool_dir=config.milter.spool_dir or None,
    )
    conn, sockets = connection_string(args.socket, config)
    Milter.factory = functools.partial(ChatmailMilter, service)
    log.info("listening on %s", conn)
    notify_ready()

    def stopped(signame: str) -> None:
        notify_stopping()
        log.info("stopped (%s)", signame)

    def serve() -> None:
        Milter.runmilter("chatmail-milter", conn, config.milter.timeout, rmsock=not sockets)

    try:
        run_until_signal(serve, stopped)
    except Exception as exc:
        log.error("libmilter failed: %s", exc)
        return 1
    finally:
        # libmilter owns the inherited descriptor and has closed it already on shutdown:
        # give it up without closing it again (close() would raise EBADF).
        for sock in sockets:
            sock.detach()
    logging.getLogger("chatmail.milter").info("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    config = load_or_exit(args.config)
    if args.command == "check":
        return check_command(config, args)
    return serve_command(config, args)
