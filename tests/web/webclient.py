"""Raw HTTP/1.x over a UNIX socket or TCP, for the tests of chatmail-web and nginx."""

from __future__ import annotations

import contextlib
import json
import socket
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        assert self.headers.get("content-type") == "application/json", self.headers
        return json.loads(self.body)


def parse_answer(data: bytes) -> Answer:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(int(lines[0].split()[1]), headers, body)


def read_all(sock: socket.socket, limit: int = 1 << 20) -> bytes:
    """Read to EOF. A reset after the answer counts as EOF: the server closed with part of a
    refused request unread (AF_UNIX then resets, after the data already queued)."""
    data = b""
    while len(data) < limit:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            if not data:
                raise
            break
        if not chunk:
            break
        data += chunk
    return data


def unix_connect(path: Path, timeout: float = 30) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(str(path))
    return sock


def exchange(path: Path, data: bytes, timeout: float = 30) -> Answer:
    """Send `data` on a new connection to the UNIX socket and read the answer to EOF."""
    with unix_connect(path, timeout) as sock:
        with contextlib.suppress(BrokenPipeError):  # answered and closed before taking all
            sock.sendall(data)
        return parse_answer(read_all(sock))


def request(method: str, path: str = "/new", body: bytes = b"", **headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: chat.example"]
    if (body or method == "POST") and "Content_Length" not in headers:
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
