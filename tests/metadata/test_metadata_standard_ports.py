"""The local relay on the standard ports of a loopback address of its own (scripts/relay.py
--address 127.0.0.27 --imaps-port 993 --smtps-port 465), as tools that assume the standard
ports need it: `cmrelayinfo` (PyPI), the tool chatmail admins use, reports the iroh relay, the
TURN server, `maxsmtprecipients`, the message size and the quota the config sets.

cmrelayinfo 0.2.1 makes its probe account itself only on a first run: for an IP address it
builds a dclogin link for `user@127.0.0.27`, without the brackets of an address literal, and
neither this relay nor the reference one has such accounts (theirs are `user@[127.0.0.27]`).
So the test gives it what it keeps after a first run, a cached Delta Chat profile, configured
by the real core from the relay's own dclogin link, and runs the unmodified command on it."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import smtplib
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import VENV_BIN, stack_dir
from harness.coturn import Coturn
from harness.deltachat import deltachat_core
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
    assert values["/shared/admin"] == f"mailto:postmaster@[{ADDRESS}]".encode()
    with smtplib.SMTP_SSL(ADDRESS, 465, context=ssl._create_unverified_context()) as smtp:
        smtp.ehlo()
        assert int(smtp.esmtp_features["size"]) == relay.config.chatmail.max_message_size
    with urllib.request.urlopen(iroh.rstrip("/") + "/generate_204", timeout=10) as response:
        assert response.status == 204
    assert stun_binding(ADDRESS, 3478)


def cmrelayinfo(cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
    return subprocess.run(
        [sys.executable, "-m", "cmrelayinfo", "--timeout", "60", *args, f"[{ADDRESS}]"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_cmrelayinfo_reports_what_the_config_sets(stack, tmp_path):
    relay = stack
    cache = tmp_path / "cache"
    profiles = cache / "cmrelayinfo" / "accounts" / f"[{ADDRESS}]"  # its cache, by relay
    addr = f"relayinfo001@[{ADDRESS}]"
    with deltachat_core(profiles) as core:
        account = core.add_account()
        account.add_transport_from_qr(relay.dclogin_uri(addr, "standard-ports-password"))
        assert account.get_config("configured_addr") == addr

    run = cmrelayinfo(cache, "--json")
    assert run.returncode == 0, (run.stdout, run.stderr)
    assert "0 created, 1 reused from cache" in run.stderr
    (report,) = [json.loads(line) for line in run.stdout.splitlines()]
    assert report["ok"], report
    assert report["iroh_relay"] == relay.config.metadata.iroh_relay
    assert report["iroh_reachable"] is True, report
    assert report["turn"]["host"] == ADDRESS and report["turn"]["port"] == 3478, report
    assert report["turn"]["expiry"] > time.time()
    assert report["turn_reachable"] is True, report
    assert report["maxsmtprecipients"] == 321
    assert report["max_message_size"] == relay.config.chatmail.max_message_size
    assert report["quota"]["storage_limit_kb"] == 512000
    assert report["admin"] == f"mailto:postmaster@[{ADDRESS}]"  # no operator_contact set

    table = cmrelayinfo(cache)
    assert table.returncode == 0, (table.stdout, table.stderr)
    header, row = table.stdout.splitlines()
    assert header.split() == ["RELAY", "IROH", "TURN", "MAXRCPT", "MAXMSG", "QUOTA", "ADMIN"]
    assert row.split() == [
        f"[{ADDRESS}]",
        "YES",
        "YES",
        "321",
        "30MB",
        "500MB",
        f"postmaster@[{ADDRESS}]",
    ]


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
