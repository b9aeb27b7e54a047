"""Killing the daemon at any point of a creation never leaves an empty or partial password file."""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

from chatmail_services.authsocket.hashing import verify_password
from harness.authtools import HELLO_AUTH, exchange, passdb_lookup, start_auth, userdb_lookup

PASSWORD = "s3cret-passw0rd"
DELAYS = [0.0, 0.001, 0.002, 0.003, 0.005, 0.008, 0.012, 0.02, 0.03, 0.05]


def check_accounts(root: Path) -> int:
    """Every password file present is complete and verifies; returns how many exist."""
    complete = 0
    for home in root.iterdir():
        path = home / "password"
        if path.exists():
            text = path.read_text()
            assert text.endswith("\n") and verify_password(PASSWORD.encode(), text.strip()), text
            complete += 1
    return complete


def kill_round(config, tmp_path: Path, delay: float, names: list[str]) -> tuple[int, int]:
    """Start, fire first logins, SIGKILL after `delay`; return (homes, complete accounts)."""
    root = Path(config.chatmail.mailboxes_dir)
    daemon = start_auth(config, tmp_path)
    socks = []
    try:
        assert exchange(daemon.socket_path, HELLO_AUTH + userdb_lookup(names[0]), 1) == [b"N"]
        for name in names:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(str(daemon.socket_path))
            sock.sendall(HELLO_AUTH + passdb_lookup(name, PASSWORD))
            socks.append(sock)
        time.sleep(delay)
        daemon.kill()
    finally:
        for sock in socks:
            sock.close()
        daemon.close()
    complete = check_accounts(root)
    homes = len(list(root.iterdir()))
    # after a restart every one of those first logins works and finds one complete account
    daemon = start_auth(config, tmp_path)
    try:
        for name in names:
            [reply] = exchange(daemon.socket_path, HELLO_AUTH + passdb_lookup(name, PASSWORD), 1)
            assert reply.startswith(b"O"), reply
    finally:
        assert daemon.close() == 0
    assert check_accounts(root) == len(names)
    return homes, complete


def test_sigkill_at_any_point_of_creation(config, tmp_path):
    root = Path(config.chatmail.mailboxes_dir)
    interrupted = 0
    for delay in DELAYS:
        names = [f"kill{i:05d}@chat.example" for i in range(40)]
        homes, complete = kill_round(config, tmp_path, delay, names)
        if complete < homes:  # killed between mkdir and the password file's link
            interrupted += 1
        shutil.rmtree(root)
        root.mkdir()
    # the kills really landed in the middle of creations, not only before or after
    assert interrupted >= 2
