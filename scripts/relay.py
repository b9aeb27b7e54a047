"""Bring up a complete chatmail relay on loopback and keep it running until interrupted.

Started by scripts/relay.sh (which installs everything first). Postfix and Dovecot get their
configurations rendered from the templates; the three services run under socket activation
as their units describe; all state lives under --state, the relay's DKIM key too (made on the
first start, kept afterwards).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "testkit"))

from chatmail_services.dnszone.records import Record
from chatmail_services.dnszone.zonefile import rdata_text
from harness.relay import LocalRelay, Ports


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
            f"  address {addr}, the password above; advanced: IMAP server 127.0.0.1, port",
            f"  {relay.dovecot.imaps_port}, SSL/TLS; SMTP server 127.0.0.1, port "
            f"{relay.postfix.smtps_port}, SSL/TLS;",
            "  certificate checks: accept invalid certificates (the certificate is self-signed).",
            "or scan / paste this login QR:",
            f"  {relay.dclogin_uri(addr, password)}",
            "",
            "Stop with Ctrl-C.",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state", type=Path, default=Path("/var/tmp/chatmail-local-relay"))
    parser.add_argument("--domain", default="chat.localhost")
    parser.add_argument("--smtp-port", type=int, default=2525, help="incoming, the port-25 role")
    parser.add_argument("--submission-port", type=int, default=2587)
    parser.add_argument("--smtps-port", type=int, default=2465)
    parser.add_argument("--imap-port", type=int, default=2143)
    parser.add_argument("--imaps-port", type=int, default=2993)
    parser.add_argument(
        "--address",
        default="127.0.0.1",
        help="loopback address to listen on (with --imaps-port 993 --smtps-port 465, what "
        "tools that assume the standard ports, such as cmrelayinfo, expect)",
    )
    args = parser.parse_args()
    if not args.address.startswith("127."):
        parser.error("--address must be a loopback address (127.0.0.0/8)")
    args.state.mkdir(parents=True, exist_ok=True)
    args.state.chmod(0o755)
    ports = Ports(
        smtp=args.smtp_port,
        submission=args.submission_port,
        smtps=args.smtps_port,
        imap=args.imap_port,
        imaps=args.imaps_port,
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    relay = LocalRelay(args.state.resolve(), domain=args.domain, ports=ports, address=args.address)
    with relay:
        print(client_instructions(relay), flush=True)
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
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
