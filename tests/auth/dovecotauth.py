"""A small client of Dovecot's own auth sockets: the auth-client protocol (what imap-login and
Postfix speak: AUTH PLAIN) and the auth-master userdb lookup (USER), for the Lua tests."""

from __future__ import annotations

import base64
import socket
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Outcome:
    """`kind`: "ok", "fail" (wrong password / unknown user), "tempfail" (code=temp_fail) or
    "closed" (Dovecot hung up, e.g. on an over-long line)."""

    kind: str
    line: str


def _recv_lines(sock: socket.socket, buf: bytearray, until: bytes) -> list[bytes]:
    while True:
        lines = bytes(buf).split(b"\n")
        for i, line in enumerate(lines[:-1]):
            if line.startswith(until):
                del buf[: sum(len(x) + 1 for x in lines[: i + 1])]
                return lines[: i + 1]
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"auth socket closed; got {bytes(buf)!r}")
        buf += chunk


def plain_login(path: Path, user: bytes, password: bytes, timeout: float = 30) -> Outcome:
    """One AUTH PLAIN on a new auth-client connection: service smtp, secured, and no-penalty
    (the tests fail many logins on purpose; Dovecot would delay each further one)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(b"VERSION\t1\t2\nCPID\t4242\n")
        buf = bytearray()
        _recv_lines(sock, buf, b"DONE")
        resp = base64.b64encode(b"\0" + user + b"\0" + password)
        try:
            sock.sendall(b"AUTH\t1\tPLAIN\tservice=smtp\tsecured\tno-penalty\tresp=" + resp + b"\n")
            line = _recv_lines(sock, buf, b"")[-1].decode("utf-8", "replace")
        except (ConnectionError, BrokenPipeError):
            return Outcome("closed", "")
    fields = line.split("\t")
    if fields[0] == "OK":
        return Outcome("ok", line)
    if fields[0] == "FAIL":
        return Outcome("tempfail" if "code=temp_fail" in fields else "fail", line)
    raise AssertionError(f"unexpected auth reply {line!r}")


def userdb_lookup(path: Path, user: str, timeout: float = 30) -> tuple[str, dict[str, str]]:
    """A userdb lookup on the auth-userdb (master) socket: ("USER"|"NOTFOUND"|"FAIL", fields)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(f"VERSION\t1\t0\nUSER\t1\t{user}\tservice=imap\n".encode())
        buf = bytearray()
        while True:  # VERSION and SPID come first
            line = _recv_lines(sock, buf, b"")[-1].decode("utf-8", "replace")
            kind, *args = line.split("\t")
            if kind in ("USER", "NOTFOUND", "FAIL"):
                return kind, dict(f.partition("=")[::2] for f in args[2:])
