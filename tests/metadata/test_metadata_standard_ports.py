"""The local relay on the standard ports of a loopback address of its own (scripts/relay.py
--address 127.0.0.27 --imaps-port 993 --smtps-port 465), as tools that assume the standard
ports need it: what `cmrelayinfo` reads (IMAPS 993: METADATA, QUOTA; SMTPS 465: SIZE; the
TURN server by STUN; the iroh relay by /generate_204) is there and reachable.

cmrelayinfo 0.2.1 itself, run with that address, does not get that far with Delta Chat core
2.65: the core makes the IMAP host `imap.<address>` from the dclogin link it builds (no `ih`),
which does not resolve. So this test asks the same questions the tool asks, itself."""

from __future__ import annotations

import http.server
import os
import shutil
import smtplib
import socket
import ssl
import struct
import threading
import urllib.request
from collections.abc import Iterator

import pytest
from harness import stack_dir
from harness.coturn import Coturn
from harness.imap import Imap
from harness.messages import wait_until
from harness.relay import LocalRelay, Ports

pytestmark = pytest.mark.stack

METADATA_KEYS = (
    "/shared/comment /shared/admin /shared/vendor/deltachat/irohrelay "
    "/shared/vendor/deltachat/turn /shared/vendor/deltachat/maxsmtprecipients"
)
ADDRESS = "127.0.0.27"  # a loopback address of its own: 993 and 465 stay free elsewhere


def _free_standard_ports() -> bool:
    for port in (993, 465):
        with socket.socket() as sock:
            try:
                sock.bind((ADDRESS, port))
            except OSError:
                return False
    return True


class IrohStandIn(http.server.BaseHTTPRequestHandler):
    """The iroh relay (an upstream binary, not installed here) answers /generate_204."""

    def do_GET(self) -> None:
        self.send_response(204 if self.path == "/generate_204" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalRelay]:
    if not _free_standard_ports():
        pytest.fail(f"{ADDRESS}:993 or :465 is taken: cannot run the relay on standard ports")
    root = stack_dir("chatmail-relayinfo-")
    secret = root / "turn-secret"
    secret.write_text("relayinfo-secret\n")
    secret.chmod(0o644)
    iroh = http.server.ThreadingHTTPServer((ADDRESS, 0), IrohStandIn)
    threading.Thread(target=iroh.serve_forever, daemon=True).start()
    sections = {
        "chatmail": {"max_recipients": 321},
        "auth": {"username_max_length": 12},  # cmrelayinfo's random names have 12 characters
        "metadata": {
            "iroh_relay": f"http://{ADDRESS}:{iroh.server_address[1]}/",
            "turn_host": ADDRESS,
            "turn_secret_file": secret,
        },
    }
    relay = LocalRelay(
        root,
        domain=ADDRESS,
        ports=Ports(imaps=993, smtps=465),
        milter=False,
        config_sections=sections,
        address=ADDRESS,
        postfix_settings={"myhostname": "relayinfo.localhost"},  # Postfix wants a name here
    )
    coturn = Coturn(root, relay.config, port=3478, address=ADDRESS)
    try:
        with relay, coturn:
            yield relay
    finally:
        iroh.shutdown()
        iroh.server_close()
        shutil.rmtree(root, ignore_errors=True)


def test_what_cmrelayinfo_reads_is_there_on_the_standard_ports(stack):
    relay = stack
    user = f"abcdefghijkl@[{ADDRESS}]"  # a 12-character name, as cmrelayinfo makes
    imap = Imap(993, host=ADDRESS).login(user, "standard-ports-password")
    values = imap.get("", METADATA_KEYS)
    (quota,) = [line for line in imap.ok('GETQUOTAROOT "INBOX"') if b"QUOTA " in line]
    imap.close()
    prefix = "/shared/vendor/deltachat/"
    assert values[prefix + "maxsmtprecipients"] == b"321"
    iroh = values[prefix + "irohrelay"].decode()
    assert iroh == relay.config.metadata.iroh_relay
    host, port, _expiry, _password = values[prefix + "turn"].decode().split(":")
    assert (host, port) == (ADDRESS, "3478")
    assert b"STORAGE 0 512000" in quota
    with smtplib.SMTP_SSL(ADDRESS, 465, context=ssl._create_unverified_context()) as smtp:
        smtp.ehlo()
        assert int(smtp.esmtp_features["size"]) == relay.config.chatmail.max_message_size
    with urllib.request.urlopen(iroh.rstrip("/") + "/generate_204", timeout=10) as response:
        assert response.status == 204
    assert stun_binding(ADDRESS, 3478)


def test_a_relay_without_a_domain_name_delivers_to_its_address_literals(stack):
    sender, rcpt = f"sender123456@[{ADDRESS}]", f"rcpt12345678@[{ADDRESS}]"
    password = "standard-ports-password"
    receiver = Imap(993, host=ADDRESS).login(rcpt, password)  # creates the account
    message = f"From: <{sender}>\r\nTo: <{rcpt}>\r\nSubject: literal\r\n\r\nhi\r\n"
    with smtplib.SMTP_SSL(ADDRESS, 465, context=ssl._create_unverified_context()) as smtp:
        smtp.login(sender, password)
        assert smtp.sendmail(sender, [rcpt], message) == {}

    def delivered() -> bool:
        (exists,) = [line for line in receiver.ok('SELECT "INBOX"') if line.endswith(b"EXISTS")]
        return exists.split()[1] == b"1"

    wait_until(delivered, timeout=60)
    receiver.close()


def stun_binding(host: str, port: int) -> bool:
    """A STUN binding request (RFC 5389), as cmrelayinfo probes the TURN server."""
    txid = os.urandom(12)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(struct.pack("!HHI", 0x0001, 0, 0x2112A442) + txid, (host, port))
        data, _ = sock.recvfrom(2048)
    return data[0:2] == b"\x01\x01" and data[8:20] == txid
