"""`[imap] compress = yes`: Dovecot offers COMPRESS=DEFLATE (RFC 4978), a client turns it on
after login and goes on compressed, into IDLE; and such a connection is never hibernated (its
imap process stays, while a plain one beside it moves into imap-hibernate). The default (no):
tests/stack/test_dovecot_tuning.py."""

from __future__ import annotations

import imaplib
import shutil
import smtplib
import ssl
import subprocess
import time
import zlib
from collections.abc import Iterator

import pytest
from harness import stack_dir
from harness.relay import LocalRelay

pytestmark = pytest.mark.stack

DOMAIN = "chat.localhost"
PASSWORD = "compress-test-password"
HIBERNATE_AFTER = 30  # imap_hibernate_timeout in the template


@pytest.fixture(scope="module")
def relay() -> Iterator[LocalRelay]:
    root = stack_dir("chatmail-compress-")
    relay = LocalRelay(
        root, domain=DOMAIN, milter=False, config_sections={"imap": {"compress": "yes"}}
    )
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


class Deflated:
    """An IMAP connection after `COMPRESS DEFLATE` OK: raw deflate both ways (RFC 4978)."""

    def __init__(self, imap: imaplib.IMAP4_SSL) -> None:
        self.sock = imap.sock
        self.sock.settimeout(30)
        self.out = zlib.compressobj(wbits=-15)
        self.inflate = zlib.decompressobj(wbits=-15)
        self.buffer = b""

    def send(self, line: bytes) -> None:
        self.sock.sendall(self.out.compress(line + b"\r\n") + self.out.flush(zlib.Z_SYNC_FLUSH))

    def readline(self) -> bytes:
        while b"\r\n" not in self.buffer:
            data = self.sock.recv(4096)
            if not data:
                raise ConnectionError(f"closed; so far {self.buffer!r}")
            self.buffer += self.inflate.decompress(data)
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def command(self, tag: bytes, line: bytes) -> list[bytes]:
        """Send `tag line`; the lines up to the tagged one, which must be OK."""
        self.send(tag + b" " + line)
        lines = []
        while not (reply := self.readline()).startswith(tag + b" "):
            lines.append(reply)
        assert reply.startswith(tag + b" OK"), (reply, lines)
        return lines


def compressed(relay: LocalRelay, local: str) -> Deflated:
    imap = login(relay, local)
    typ, data = imap.xatom("COMPRESS", "DEFLATE")
    assert typ == "OK", data
    return Deflated(imap)


def imap_processes(relay: LocalRelay) -> list[str]:
    master = (relay.dovecot.base_dir / "master.pid").read_text().strip()
    out = subprocess.run(
        ["ps", "-o", "args=", "--ppid", master], capture_output=True, text=True, check=True
    ).stdout
    return [title for title in out.splitlines() if title.split()[0] == "dovecot/imap"]


def deliver(relay: LocalRelay, to: str) -> None:
    with smtplib.SMTP("127.0.0.1", relay.postfix.smtp_port, timeout=30) as smtp:
        smtp.sendmail("sender@elsewhere.example", [to], f"To: {to}\r\nSubject: x\r\n\r\nhello\r\n")


def test_compress_deflate_is_offered(relay):
    imap = login(relay, "offered01")
    typ, data = imap.capability()  # after login (the greeting's list is the pre-login one)
    imap.logout()
    assert typ == "OK" and "COMPRESS=DEFLATE" in data[0].decode().split()


def test_compressed_session_goes_on_into_idle(relay):
    conn = compressed(relay, "deflated1")
    conn.command(b"c1", b"NOOP")
    assert any(b"EXISTS" in line for line in conn.command(b"c2", b"SELECT INBOX"))
    conn.send(b"c3 IDLE")
    assert conn.readline().startswith(b"+")
    conn.send(b"DONE")
    while not (line := conn.readline()).startswith(b"c3 "):
        pass
    assert line.startswith(b"c3 OK"), line
    conn.command(b"c4", b"LOGOUT")


def test_a_compressed_connection_is_never_hibernated(relay):
    plain = login(relay, "plainidle")
    plain.select("INBOX")
    deflated = compressed(relay, "deflidle1")
    deflated.command(b"d1", b"SELECT INBOX")
    assert len(imap_processes(relay)) == 2
    tag = plain._new_tag().decode()
    plain.send(f"{tag} IDLE\r\n".encode())
    assert plain.readline().startswith(b"+")
    deflated.send(b"d2 IDLE")
    assert deflated.readline().startswith(b"+")
    deadline = time.monotonic() + HIBERNATE_AFTER + 30
    while len(imap_processes(relay)) > 1:  # the plain one moves into imap-hibernate
        assert time.monotonic() < deadline, imap_processes(relay)
        time.sleep(1)
    time.sleep(10)  # and the compressed one stays in its own process
    assert len(imap_processes(relay)) == 1
    deliver(relay, f"deflidle1@{DOMAIN}")
    while (line := deflated.readline()).startswith(b"* OK Still here"):
        pass  # Dovecot's IDLE keep-alive may come first
    assert line.startswith(b"* ") and b"EXISTS" in line, line  # still notified at once
    deflated.send(b"DONE")
    while not (line := deflated.readline()).startswith(b"d2 "):
        pass
    assert line.startswith(b"d2 OK"), line
    plain.send(b"DONE\r\n")
    while not (line := plain.readline()).startswith(tag.encode()):
        pass
    assert b"OK" in line
    plain.logout()
