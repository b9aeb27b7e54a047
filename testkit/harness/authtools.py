"""Helpers for the auth tests: a small dict-protocol client; the daemon under activation."""

from __future__ import annotations

import socket
from pathlib import Path

from chatmail_services.config import Config

from . import VENV_BIN
from .activation import ActivatedService

CHATMAIL_AUTH = VENV_BIN / "chatmail-auth"
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


def start_auth(
    config: Config, root: Path, *, user: str | None = None, wrap: list[str] = ()
) -> ActivatedService:
    """chatmail-auth serve socket-activated at root/activated.sock (harness.activation: the
    harness holds the socket, the process gets it as fd 3), once it answers a lookup.

    `user` runs the process and owns the socket, like the units' User=/SocketUser=; `wrap` is
    a command prefix that execs the server, e.g. ["prlimit", "--nofile=40", "--"].
    """
    argv = [*wrap, str(CHATMAIL_AUTH), "--config", config.path, "serve"]
    service = ActivatedService(
        argv, root / "activated.sock", log_path=root / "auth-daemon.log", user=user, cwd=root
    ).start()
    try:
        reply = exchange(service.socket_path, HELLO_AUTH + b"Lshared/none\t\n", 1, timeout=20)
    except OSError as exc:
        reply = [repr(exc).encode()]
    if reply != [b"N"]:
        service.close()
        raise AssertionError(f"chatmail-auth did not answer: {reply}\n{service.log_text()}")
    return service
