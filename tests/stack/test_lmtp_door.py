"""Only Postfix delivers: no local user reaches Dovecot's LMTP past Postfix and the milter."""

from __future__ import annotations

import contextlib
import imaplib
import pwd
import shutil
import socket
import ssl
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import MAIL_USER, stack_dir
from harness.relay import LocalRelay

pytestmark = pytest.mark.stack

DOMAIN = "chat.localhost"
VICTIM = f"victim001@{DOMAIN}"
# Delivers one cleartext message over LMTP; exit 13 if the socket refuses us, 0 if delivered.
PROBE = r"""
import socket, sys
try:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(sys.argv[1])
except PermissionError:
    sys.exit(13)
f = s.makefile("rwb")
def say(line):
    if line is not None:
        f.write(line.encode() + b"\r\n"); f.flush()
    reply = f.readline()
    while reply[3:4] == b"-":
        reply = f.readline()
    return reply
say(None)
say("LHLO attacker")
say("MAIL FROM:<>")
if not say(f"RCPT TO:<{sys.argv[2]}>").startswith(b"250"):
    sys.exit(2)
say("DATA")
reply = say("Subject: cleartext\r\n\r\nplain text past the milter\r\n.")
sys.exit(0 if reply.startswith(b"250") else 3)
"""


@pytest.fixture(scope="module")
def relay() -> Iterator[LocalRelay]:
    root = stack_dir("chatmail-lmtp-")
    relay = LocalRelay(root, domain=DOMAIN, milter=False)
    try:
        with relay:
            # the victim's account exists (first login creates it)
            imap = imaplib.IMAP4_SSL(
                "127.0.0.1", relay.dovecot.imaps_port, ssl_context=ssl._create_unverified_context()
            )
            imap.login(VICTIM, "victim-password-1")
            imap.logout()
            yield relay
    finally:
        shutil.rmtree(root, ignore_errors=True)


def probe(user: str, path: Path) -> int:
    gid = pwd.getpwnam(user).pw_gid
    command = ["setpriv", f"--reuid={user}", f"--regid={gid}", "--init-groups", "--"]
    command += ["/usr/bin/python3", "-c", PROBE, str(path), VICTIM]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode in (0, 13), result.stderr
    return result.returncode


def forward(listener: socket.socket, target: Path) -> None:
    """Root's relay of one connection from `listener` to `target`, both directions."""
    client, _ = listener.accept()
    upstream = socket.socket(socket.AF_UNIX)
    upstream.connect(str(target))

    def pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
    back.start()
    pump(client, upstream)
    back.join(30)
    client.close()
    upstream.close()


def lmtp_sockets(relay: LocalRelay) -> list[Path]:
    """Every LMTP socket Dovecot listens on (its base_dir's and the one for Postfix)."""
    found = [relay.dovecot.lmtp_socket]
    found += [p for p in relay.dovecot.base_dir.rglob("*lmtp*") if stat.S_ISSOCK(p.lstat().st_mode)]
    return found


def new_mail(relay: LocalRelay) -> list[Path]:
    home = Path(relay.config.chatmail.mailboxes_dir) / VICTIM
    return sorted(home.glob("new/*")) + sorted(home.glob("cur/*"))


@pytest.mark.parametrize("user", ["nobody", MAIL_USER])
def test_no_local_user_can_deliver(relay, user):
    sockets = lmtp_sockets(relay)
    assert relay.dovecot.base_dir / "lmtp" in sockets
    for path in sockets:
        assert probe(user, path) == 13, path
    assert new_mail(relay) == []


def test_the_probe_does_deliver_where_it_may(relay):
    """The probe can fail the other way: through a world-connectable relay (root's, here) to
    the very same LMTP socket, it delivers."""
    public = stack_dir("chatmail-lmtp-public-")
    try:
        path = public / "open.sock"
        with socket.socket(socket.AF_UNIX) as listener:
            listener.bind(str(path))
            path.chmod(0o666)
            listener.listen(1)
            relay_thread = threading.Thread(
                target=forward, args=(listener, relay.dovecot.lmtp_socket), daemon=True
            )
            relay_thread.start()
            assert probe("nobody", path) == 0
            relay_thread.join(30)
        assert len(new_mail(relay)) == 1
        for message in new_mail(relay):
            message.unlink()
    finally:
        shutil.rmtree(public, ignore_errors=True)


def test_postfix_still_delivers(relay):
    with socket.create_connection(("127.0.0.1", relay.postfix.smtp_port), timeout=30) as sock:
        f = sock.makefile("rwb")

        def say(line: str | None) -> bytes:
            if line is not None:
                f.write(line.encode() + b"\r\n")
                f.flush()
            reply = f.readline()
            while reply[3:4] == b"-":
                reply = f.readline()
            return reply

        assert say(None).startswith(b"220")
        say("EHLO sender.example")
        assert say("MAIL FROM:<someone@sender.example>").startswith(b"250")
        assert say(f"RCPT TO:<{VICTIM}>").startswith(b"250")
        assert say("DATA").startswith(b"354")
        assert say("Subject: hi\r\n\r\nhello\r\n.").startswith(b"250")
        say("QUIT")
    relay.postfix.flush()
    deadline = time.monotonic() + 30
    while not new_mail(relay):
        assert time.monotonic() < deadline, relay.postfix.log_text()[-3000:]
        time.sleep(0.1)
    for message in new_mail(relay):
        message.unlink()
