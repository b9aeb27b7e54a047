"""Dovecot tuned for many idle clients, as the templates configure it: IMAP hibernation (and
waking up on new mail), no COMPRESS=DEFLATE by default ([imap] compress = yes:
test_imap_compress.py), no Received header from LMTP, no reverse lookups."""

from __future__ import annotations

import imaplib
import shutil
import smtplib
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import stack_dir
from harness.relay import LocalRelay

pytestmark = pytest.mark.stack

DOMAIN = "chat.localhost"
PASSWORD = "tuning-test-password"
HIBERNATE_AFTER = 30  # imap_hibernate_timeout in the template


@pytest.fixture(scope="module")
def relay() -> Iterator[LocalRelay]:
    root = stack_dir("chatmail-tuning-")
    relay = LocalRelay(root, domain=DOMAIN, milter=False)
    try:
        with relay:
            yield relay
    except BaseException:
        print(relay.dovecot.log_text()[-20000:])
        raise
    finally:
        shutil.rmtree(root, ignore_errors=True)


def login(relay: LocalRelay, local: str) -> imaplib.IMAP4_SSL:
    imap = imaplib.IMAP4_SSL(
        "127.0.0.1", relay.dovecot.imaps_port, ssl_context=ssl._create_unverified_context()
    )
    imap.login(f"{local}@{DOMAIN}", PASSWORD)
    return imap


def deliver(relay: LocalRelay, to: str) -> None:
    """A message to `to` through Postfix's port 25 and Dovecot's LMTP."""
    with smtplib.SMTP("127.0.0.1", relay.postfix.smtp_port, timeout=30) as smtp:
        smtp.sendmail("sender@elsewhere.example", [to], f"To: {to}\r\nSubject: x\r\n\r\nhello\r\n")


def dovecot_children(relay: LocalRelay) -> list[str]:
    """The process titles of the Dovecot master's children."""
    master = (relay.dovecot.base_dir / "master.pid").read_text().strip()
    out = subprocess.run(
        ["ps", "-o", "args=", "--ppid", master], capture_output=True, text=True, check=True
    ).stdout
    return out.splitlines()


def test_capabilities(relay):
    imap = login(relay, "capable02")
    typ, data = imap.capability()  # after login: imaplib keeps the greeting's list otherwise
    imap.logout()
    assert typ == "OK"
    caps = set(data[0].decode().split())
    assert {"METADATA", "XCHATMAIL", "XDELTAPUSH", "IDLE", "QUOTA"} <= caps
    assert "COMPRESS=DEFLATE" not in caps  # [imap] compress = no, the default


def test_compress_is_refused_by_default(relay):
    imap = login(relay, "compress1")
    with pytest.raises(imaplib.IMAP4.error, match="Unknown command"):  # BAD: no imap_zlib
        imap.xatom("COMPRESS", "DEFLATE")
    assert imap.noop()[0] == "OK"  # the session goes on uncompressed
    imap.logout()


def test_no_received_header_from_lmtp(relay):
    imap = login(relay, "received1")
    imap.logout()
    deliver(relay, f"received1@{DOMAIN}")
    home = Path(relay.config.chatmail.mailboxes_dir) / f"received1@{DOMAIN}"
    deadline = time.monotonic() + 30
    while not list(home.glob("new/*")):
        assert time.monotonic() < deadline, relay.postfix.log_text()[-3000:]
        time.sleep(0.1)
    (message,) = home.glob("new/*")
    headers = message.read_bytes().split(b"\n\n", 1)[0]
    assert b"LMTP" not in headers, headers
    assert b"Dovecot" not in headers, headers


def test_no_reverse_lookups_in_postfix(relay):
    value = subprocess.run(
        ["postconf", "-c", str(relay.postfix.dir), "-h", "smtpd_peername_lookup"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert value.stdout.strip() == "no" and value.stderr == ""


def test_idle_clients_hibernate_and_wake_on_new_mail(relay):
    user = f"sleeper01@{DOMAIN}"
    imap = login(relay, "sleeper01")
    imap.select("INBOX")
    before = dovecot_children(relay)
    assert [t for t in before if t.split()[0] == "dovecot/imap"], before  # its own process
    tag = imap._new_tag().decode()
    imap.send(f"{tag} IDLE\r\n".encode())
    assert imap.readline().startswith(b"+")
    deadline = time.monotonic() + HIBERNATE_AFTER + 30
    while True:
        children = dovecot_children(relay)
        imap_processes = [t for t in children if t.split()[0] == "dovecot/imap"]
        if not imap_processes and any("imap-hibernate" in t for t in children):
            break  # the connection's own imap process is gone: parked in imap-hibernate
        assert time.monotonic() < deadline, children
        time.sleep(1)
    deliver(relay, user)
    imap.sock.settimeout(30)
    line = imap.readline()
    assert line.startswith(b"* ") and b"EXISTS" in line, line  # woke up with the news
    imap.send(b"DONE\r\n")
    while not (line := imap.readline()).startswith(tag.encode()):
        pass
    assert b"OK" in line
    imap.logout()
