"""Command line of chatmail-milter: `serve` (the daemon), `check` (one message, offline) and
`dkim-keygen` (the signing key and its DNS record)."""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from typing import TYPE_CHECKING

from chatmail_services.dnszone.records import dkim_record
from chatmail_services.dnszone.zonefile import record_line

from chatmail_services import dkimkey
from chatmail_services.activation import inherited_sockets, notify_ready, notify_stopping
from chatmail_services.address import ipv4_domain
from chatmail_services.cli import (
    build_or_exit,
    command_parser,
    load_or_exit,
    log_config_warnings,
)
from chatmail_services.config import Config, SettingsError
from chatmail_services.logsetup import setup_logging
from chatmail_services.metrics import Registry
from chatmail_services.textfile import config_publisher

from . import mime, policy
from .accounts import enforcement_lookup
from .dkimsign import Signer, load_signer
from .dkimverify import Verifier, make_verifier
from .lifecycle import run_until_signal
from .metrics import MilterMetrics

if TYPE_CHECKING:
    from .adapter import Service

KEY_OWNER = "vmail"  # the User= of chatmail-milter.service, which signs


def _parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "chatmail-milter",
        "Encryption-checking milter for Postfix.",
    )
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
    keygen = sub.add_parser(
        "dkim-keygen", help="create the DKIM key ([dkim] key_file) and print its DNS record"
    )
    keygen.add_argument(
        "--owner",
        default=KEY_OWNER,
        metavar="USER",
        help=f"owner of the private key file (default: {KEY_OWNER}, the milter's user)",
    )
    keygen.add_argument(
        "--if-missing",
        action="store_true",
        help="do nothing (exit 0) when the key file exists (the package's postinst)",
    )
    return parser


def keygen_command(config: Config, args: argparse.Namespace) -> int:
    """Create the key (refusing to replace one) and print the record to publish."""
    if args.if_missing and os.path.lexists(config.dkim.key_file):
        return 0
    try:
        dkimkey.generate_key(config.dkim.key_file, args.owner)
        public = dkimkey.public_key_b64(config.dkim.key_file)
    except (dkimkey.DkimKeyError, KeyError, OSError) as exc:
        reason = f"no user {args.owner!r}" if isinstance(exc, KeyError) else str(exc)
        print(f"chatmail-milter: {reason}", file=sys.stderr)
        return 1
    if ipv4_domain(config.chatmail.mail_domain):
        print(f"created {config.dkim.key_file} (owner {args.owner}); {NO_SIGNING}", file=sys.stderr)
        return 0
    print(f"created {config.dkim.key_file} (owner {args.owner}); publish:", file=sys.stderr)
    print(record_line(dkim_record(config, public)))
    return 0


NO_SIGNING = (
    "a relay without a domain name signs nothing: DKIM has no signing domain for an address literal"
)


def signs(config: Config) -> bool:
    """Whether outgoing mail is signed: `[dkim] sign`, and a mail domain that is a name."""
    return config.dkim.sign and not ipv4_domain(config.chatmail.mail_domain)


def dkim_parts(config: Config) -> tuple[Signer | None, Verifier | None]:
    """Signer and verifier as `[dkim]` says; `SettingsError` for a missing or bad key."""
    signer = None
    if signs(config):
        try:
            signer = load_signer(
                config.dkim.selector, config.chatmail.mail_domain, config.dkim.key_file
            )
        except dkimkey.DkimKeyError as exc:
            raise SettingsError(f"[dkim] sign = yes, but {exc}") from None
    verifier = make_verifier(config.dkim) if config.dkim.verify else None
    return signer, verifier


def service_from_config(config: Config) -> Service:
    """What every milter connection shares, as the configuration says (`SettingsError`)."""
    from .adapter import Service
    from .ratelimit import RateLimiter

    signer, verifier = dkim_parts(config)
    return Service(
        limiter=RateLimiter(
            config.milter.max_user_send_per_minute, config.milter.max_user_send_burst_size
        ),
        enforces_encryption=enforcement_lookup(
            config.chatmail.mailboxes_dir, config.chatmail.mail_domain
        ),
        max_message_size=config.chatmail.max_message_size,
        spool_threshold=config.milter.spool_threshold,
        spool_dir=config.milter.spool_dir or None,
        mail_domain=config.chatmail.mail_domain,
        signer=signer,
        verifier=verifier,
        metrics=MilterMetrics(Registry()) if config.chatmail.metrics_dir else None,
    )


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

    from .adapter import ChatmailMilter

    service = build_or_exit(service_from_config, config, "chatmail-milter")
    log = setup_logging(config.chatmail.log_level, "chatmail.milter")
    log_config_warnings(config)
    if config.dkim.sign and service.signer is None:
        log.warning("[dkim] sign = yes, but %s", NO_SIGNING)
    conn, sockets = connection_string(args.socket, config)
    Milter.factory = functools.partial(ChatmailMilter, service)
    Milter.set_flags(Milter.ADDHDRS | Milter.CHGFROM)  # the DKIM-Signature; the null sender
    log.info("listening on %s", conn)
    metrics = service.metrics
    publisher = config_publisher(config, "chatmail-milter", metrics.registry) if metrics else None
    notify_ready()

    def stopped(signame: str) -> None:
        notify_stopping()
        if publisher is not None:
            publisher.stop()
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
        if publisher is not None:
            publisher.stop()
    logging.getLogger("chatmail.milter").info("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    config = load_or_exit(args.config)
    if args.command == "check":
        return check_command(config, args)
    if args.command == "dkim-keygen":
        return keygen_command(config, args)
    return serve_command(config, args)
