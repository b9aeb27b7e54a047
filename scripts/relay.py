"""Bring up a complete chatmail relay on loopback and keep it running until interrupted.

Started by scripts/relay.sh (which installs everything first). Postfix and Dovecot get their
configurations rendered from the templates; the three services run under socket activation
as their units describe; all state lives under --state, the relay's DKIM key too (made on the
first start, kept afterwards).
"""

from __future__ import annotations

import argparse
import configparser
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import NoReturn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "testkit"))

from chatmail_services.dnszone.records import Record
from chatmail_services.dnszone.zonefile import rdata_text
from harness.relay import LocalRelay, Ports

from chatmail_services.config import ConfigError


def dkim_instructions(relay: LocalRelay) -> str:
    """The DKIM key the relay signs with, as the TXT record other relays look up."""
    name, value = relay.dkim_record()
    return "\n".join(
        [
            f"DKIM: outgoing mail is signed with {relay.dkim_key} (selector "
            f"{relay.config.dkim.selector}); other relays accept it once DNS has this record:",
            f"  {name} TXT {rdata_text(Record(name, 'TXT', value, True))}",
            f"  (all records: chatmail-dns --config {relay.config_path})",
        ]
    )


def client_instructions(relay: LocalRelay) -> str:
    """What an admin tells a tester: a fresh account and how Delta Chat reaches the relay."""
    credentials = relay.new_credentials()
    addr, password = credentials["email"], credentials["password"]
    return "\n".join(
        [
            relay.describe(),
            "",
            f"mail domain: {relay.config.chatmail.mail_domain}",
            dkim_instructions(relay),
            "",
            f"new account (created on its first login): {addr}  password: {password}",
            "",
            "Delta Chat: New profile > Use other server > Log in with an existing address;",
            f"  address {addr}, the password above; advanced: IMAP server {relay.address}, port",
            f"  {relay.dovecot.imaps_port}, SSL/TLS; SMTP server {relay.address}, port "
            f"{relay.postfix.smtps_port}, SSL/TLS;",
            "  certificate checks: accept invalid certificates (the certificate is self-signed).",
            "or scan / paste this login QR:",
            f"  {relay.dclogin_uri(addr, password)}",
            *web_instructions(relay),
        ]
    )


def web_instructions(relay: LocalRelay) -> list[str]:
    """Where the relay's pages and /new are (nginx on loopback, a self-signed certificate)."""
    if relay.web is None:
        return []
    base = f"https://{relay.address}:{relay.web.nginx.https_port}"
    return [
        "",
        f"web: {base}/ (the home page with the account QR code; accept the certificate)",
        f"  new accounts: curl -k -X POST {base}/new  (JSON with a dclogin_url for Delta Chat)",
        f"  (the QR code names https://{relay.domain}/new, which only a real relay serves)",
        f"port {relay.web.nginx.https_port} also carries IMAP and SMTP (TLS, told apart by ALPN "
        "as on a relay's 443):",
        f"  openssl s_client -connect {relay.address}:{relay.web.nginx.https_port} -alpn imap",
        f"  Delta Chat: IMAP and SMTP port {relay.web.nginx.https_port}, SSL/TLS",
    ]


# Options the local relay sets itself (its sockets, Maildirs, key and queue live under --state):
# a config file's values for these are ignored.
RELAY_OWNED = {
    ("chatmail", "mailboxes_dir"),
    ("auth", "socket"),
    ("auth", "nocreate_file"),
    ("milter", "socket"),
    ("dkim", "key_file"),
    ("dkim", "resolver"),
    ("metadata", "socket"),
    ("metadata", "queue_dir"),
    ("web", "socket"),
    ("web", "root"),
    ("web", "login_host"),
    ("web", "login_imaps_port"),
    ("web", "login_smtps_port"),
}

# The common options, as flags: (flag, section, key, help).
CONFIG_FLAGS = (
    ("--max-message-size", "chatmail", "max_message_size", "largest message, bytes (or 30M)"),
    ("--max-mailbox-size", "chatmail", "max_mailbox_size", "quota per account (e.g. 500M)"),
    ("--max-recipients", "chatmail", "max_recipients", "recipients per message"),
    ("--delete-mails-after", "expire", "delete_mails_after", "days until a message is deleted"),
    ("--log-level", "chatmail", "log_level", "debug shows addresses in the services' logs"),
)


class UsageError(Exception):
    """A bad option or an unusable environment: one line for the user."""


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see --help)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = OneLineParser(description=__doc__, prog="scripts/relay.sh")
    parser.add_argument("--state", type=Path, default=Path("/var/tmp/chatmail-local-relay"))
    parser.add_argument("--domain", help="mail domain (default: the config's, or chat.localhost)")
    parser.add_argument("--smtp-port", type=int, default=2525, help="incoming, the port-25 role")
    parser.add_argument("--submission-port", type=int, default=2587)
    parser.add_argument("--smtps-port", type=int, default=2465)
    parser.add_argument("--imap-port", type=int, default=2143)
    parser.add_argument("--imaps-port", type=int, default=2993)
    parser.add_argument("--http-port", type=int, default=2080, help="the web pages (redirect)")
    parser.add_argument(
        "--https-port",
        type=int,
        default=2443,
        help="the web pages and /new, and IMAP and SMTP by TLS ALPN (a relay's port 443)",
    )
    parser.add_argument(
        "--address",
        default="127.0.0.1",
        help="loopback address to listen on (with --imaps-port 993 --smtps-port 465, what "
        "tools that assume the standard ports, such as cmrelayinfo, expect)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="a chatmail.ini whose options apply (except the relay's own paths under --state)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="one config option (repeatable; after --config)",
    )
    for flag, section, key, text in CONFIG_FLAGS:
        parser.add_argument(flag, dest=f"{section}.{key}", metavar="VALUE", help=text)
    args = parser.parse_args(argv)
    if not args.address.startswith("127."):
        parser.error("--address must be a loopback address (127.0.0.0/8)")
    return args


def config_sections(args: argparse.Namespace) -> dict[str, dict[str, object]]:
    """The config options the user gave: --config's, then --set's, then the flags'."""
    sections: dict[str, dict[str, object]] = {}
    if args.config:
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read_string(args.config.read_text(), source=str(args.config))
        except (OSError, configparser.Error) as exc:
            raise UsageError(f"--config {args.config}: {str(exc).splitlines()[0]}") from None
        for name in parser.sections():
            sections.setdefault(name, {}).update(parser[name])
    for item in args.set:
        name, dot, rest = item.partition(".")
        key, eq, value = rest.partition("=")
        if not (dot and eq and name and key):
            raise UsageError(f"--set {item}: expected SECTION.KEY=VALUE (see --help)")
        sections.setdefault(name, {})[key] = value
    for _, section, key, _ in CONFIG_FLAGS:
        value = getattr(args, f"{section}.{key}")
        if value is not None:
            sections.setdefault(section, {})[key] = value
    for name, key in RELAY_OWNED:
        sections.get(name, {}).pop(key, None)
    return sections


def check_ports_free(address: str, ports: list[tuple[str, int]]) -> None:
    """Refuse to start when a port is taken, naming the port and its option."""
    for option, port in ports:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((address, port))
            except OSError as exc:
                raise UsageError(
                    f"{address}:{port} is in use ({exc.strerror}); choose another with "
                    f"--{option}-port, or stop what listens there"
                ) from None


def log_locations(relay: LocalRelay) -> str:
    return "\n".join(
        [
            "logs:",
            f"  services  {relay.logs}/chatmail-*.log",
            f"  Postfix   {relay.postfix.log_path}",
            f"  Dovecot   {relay.dovecot.log_path}",
            f"  nginx     {relay.web.nginx.dir} (no access log)" if relay.web else "",
        ]
    )


def run(args: argparse.Namespace) -> int:
    sections = config_sections(args)
    domain = args.domain or sections.get("chatmail", {}).pop("mail_domain", "chat.localhost")
    sections.get("chatmail", {}).pop("mail_domain", None)
    ports = Ports(
        smtp=args.smtp_port,
        submission=args.submission_port,
        smtps=args.smtps_port,
        imap=args.imap_port,
        imaps=args.imaps_port,
    )
    check_ports_free(
        args.address,
        [(name, getattr(ports, name)) for name in ("smtp", "submission", "smtps", "imap", "imaps")]
        + [("http", args.http_port), ("https", args.https_port)],
    )
    args.state.mkdir(parents=True, exist_ok=True)
    args.state.chmod(0o755)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        relay = LocalRelay(
            args.state.resolve(),
            domain=str(domain),
            ports=ports,
            address=args.address,
            config_sections=sections,
            web=True,
            web_ports=(args.http_port, args.https_port),
        )
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    try:
        relay.start()
    except (RuntimeError, TimeoutError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"the relay did not start: {first}\n{log_locations(relay)}") from None
    try:
        print(client_instructions(relay), flush=True)
        print(log_locations(relay), flush=True)
        print("\nStop with Ctrl-C.", flush=True)
        while not stop.wait(1):
            services = (
                ("chatmail-auth", relay.auth),
                ("chatmail-milter", relay.milter),
                ("chatmail-metadata", relay.metadata),
            )
            for name, service in services:
                if service and not service.alive:
                    print(f"{name} exited; see {service.log_path}; restarting", file=sys.stderr)
                    service.start()
    finally:
        relay.stop()
    print("stopped", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        return run(parse_args(argv))
    except UsageError as exc:
        print(f"relay: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
