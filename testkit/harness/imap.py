"""A small IMAP client for METADATA (imaplib cannot send a literal inside parentheses)."""

from __future__ import annotations

import contextlib
import re
import socket
import ssl

_LITERAL = re.compile(rb"\{(\d+)\}\r\n$")


def quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Imap:
    """One TLS connection; `command()` returns (tagged status line, untagged lines)."""

    def __init__(self, port: int, timeout: float = 30, host: str = "127.0.0.1") -> None:
        raw = socket.create_connection((host, port), timeout=timeout)
        self.sock = ssl._create_unverified_context().wrap_socket(raw)
        self.file = self.sock.makefile("rb")
        self.literals: list[bytes] = []
        self.greeting = self._line()
        self.counter = 0

    def _line(self) -> bytes:
        """One response line; each literal becomes `\0<index>\0` into `self.literals`."""
        line = self.file.readline()
        while match := _LITERAL.search(line):
            self.literals.append(self.file.read(int(match[1])))
            line = line[: match.start()] + b"\0%d\0" % (len(self.literals) - 1)
            line += self.file.readline()
        return line.rstrip(b"\r\n")

    def command(self, *parts: bytes | str) -> tuple[bytes, list[bytes]]:
        """Send `parts` joined by nothing; a bytes part is sent as a literal."""
        self.counter += 1
        tag = f"t{self.counter}".encode()
        pending = tag + b" "
        for part in parts:
            if isinstance(part, str):
                pending += part.encode()
                continue
            self.sock.sendall(pending + b"{%d}\r\n" % len(part))
            cont = self._line()
            if not cont.startswith(b"+"):
                return cont, []
            pending = part
        self.sock.sendall(pending + b"\r\n")
        untagged = []
        while True:
            line = self._line()
            if line.startswith(tag + b" "):
                return line[len(tag) + 1 :], untagged
            untagged.append(line)

    def ok(self, *parts: bytes | str) -> list[bytes]:
        status, untagged = self.command(*parts)
        assert status.startswith(b"OK"), (status, untagged)
        return untagged

    def login(self, user: str, password: str) -> Imap:
        self.ok("LOGIN ", quoted(user), " ", quoted(password))
        return self

    def capabilities(self) -> set[str]:
        (line,) = [u for u in self.ok("CAPABILITY") if u.startswith(b"* CAPABILITY ")]
        return set(line.decode().split()[2:])

    def set_token(self, token: str | bytes, mailbox: str = "INBOX") -> bytes:
        """SETMETADATA as Delta Chat sends it; bytes go as a literal. The tagged status."""
        value = token if isinstance(token, bytes) else quoted(token)
        status, _ = self.command(
            f"SETMETADATA {quoted(mailbox)} (/private/devicetoken ", value, ")"
        )
        return status

    def get(self, mailbox: str, *keys: str) -> dict[str, bytes | None]:
        """GETMETADATA; the values of the keys the server returned (NIL: None)."""
        untagged = self.ok(f"GETMETADATA {quoted(mailbox)} ({' '.join(keys)})")
        values: dict[str, bytes | None] = {}
        for line in untagged:
            if not line.startswith(b"* METADATA "):
                continue
            body = line[line.index(b"(") + 1 : line.rindex(b")")]
            for key, value in re.findall(rb'(\S+) ("(?:[^"\\]|\\.)*"|NIL|\0\d+\0)', body):
                values[key.decode()] = self._value(value)
        return values

    def _value(self, token: bytes) -> bytes | None:
        if token == b"NIL":
            return None
        if token.startswith(b"\0"):
            return self.literals[int(token[1:-1])]
        return re.sub(rb"\\(.)", rb"\1", token[1:-1])

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.command("LOGOUT")
        self.sock.close()
