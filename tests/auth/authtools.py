"""Helpers for the auth tests: a small dict-protocol client; the daemon under activation."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from chatmail_services.config import Config

REPO = Path(__file__).resolve().parents[2]
CHATMAIL_AUTH = REPO / ".venv" / "bin" / "chatmail-auth"
HELLO_AUTH = b"H3\t2\t0\t\tauth\n"
HELLO_LASTLOGIN = b"H3\t2\t0\t\tlastlogin\n"


def esc_e(text: str) -> str:
    """Dovecot's %E, as the test client's own independent implementation."""
    return "".join("\\" + ch if ch in "\"'\\" else ch for ch in text)


def passdb_lookup(user: str, password: str) -> bytes:
    key = f'shared/passdb/{esc_e(password)}"{esc_e(user)}'
    return f"L{key}\t{user}\n".encode("utf-8", "surrogateescape")


def userdb_lookup(user: str) -> bytes:
    return f"Lshared/userdb/{user}\t{user}\n".encode()


def exchange(path: Path, data: bytes, replies: int, timeout: float = 10.0) -> list[bytes]:
    """Send `data` on a new connection and read `replies` lines (an iteration counts its rows)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(data)
        buf = b""
        while buf.count(b"\n") < replies:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
    return buf.split(b"\n")[:replies]


def read_all(path: Path, data: bytes, timeout: float = 10.0) -> bytes:
    """Send `data`, half-close, and read until the server closes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        buf = b""
        while chunk := sock.recv(65536):
            buf += chunk
    return buf


class Daemon:
    """chatmail-auth serve under `systemd-socket-activate -l SOCKET` (execs: pid = server)."""

    def __init__(
        self, config: Config, root: Path, *, user: str | None = None, wrap: list[str] = ()
    ) -> None:
        self.config = config
        self.wrap = list(wrap)  # e.g. ["prlimit", "--nofile=40", "--"]
        self.root = root
        self.user = user  # run (and own the socket) as this user, like the units' User=
        self.socket = root / "activated.sock"
        self.log_path = root / "auth-daemon.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Daemon:
        if self.socket.exists():
            self.socket.unlink()
        argv = ["systemd-socket-activate", "-l", str(self.socket), "--",
                str(CHATMAIL_AUTH), "--config", self.config.path, "serve"]  # fmt: skip
        if self.user:
            argv = ["setpriv", f"--reuid={self.user}", f"--regid={self.user}", "--init-groups",
                    "--", *argv]  # fmt: skip
        argv = self.wrap + argv
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.root,
            )  # fmt: skip
        # ready = answers a lookup (the socket file exists a moment before listen(2))
        deadline = time.monotonic() + 20
        while True:
            try:
                if exchange(self.socket, HELLO_AUTH + b"Lshared/none\t\n", 1) == [b"N"]:
                    return self
            except OSError:
                pass
            assert time.monotonic() < deadline and self.alive, self.log_text()
            time.sleep(0.02)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
