"""A minimal milter-protocol client (the MTA side), enough to drive a milter at full speed.

Packets are `len(4, big endian) cmd(1) data`. Commands are pipelined in batches (see
`send_message`); the final reply of the end-of-message is returned with the time it took.
"""

from __future__ import annotations

import socket
import struct
import time

SMFI_VERSION = 6
ALL_ACTIONS = 0x1FF
ALL_STEPS = 0x1FFFFF
P_NOEOH = 0x40
P_NR_HDR = 0x80
P_NR_RCPT = 0x8000
BATCH = 32
CHUNK = 65534  # libmilter refuses packets longer than 65535 bytes (command byte included)
FINAL = {b"a": "accept", b"r": "reject", b"t": "tempfail", b"y": "reply", b"d": "discard"}


def packet(cmd: bytes, data: bytes = b"") -> bytes:
    return struct.pack(">I", len(data) + 1) + cmd + data


class MilterClient:
    """One connection to a milter, as one SMTP session of an MTA."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""
        self.sock.sendall(packet(b"O", struct.pack(">III", SMFI_VERSION, ALL_ACTIONS, ALL_STEPS)))
        cmd, data = self._read()
        assert cmd == b"O", cmd
        _version, self.actions, self.protocol = struct.unpack(">III", data[:12])

    def _read(self) -> tuple[bytes, bytes]:
        while len(self.buf) < 4:
            self._fill()
        (size,) = struct.unpack(">I", self.buf[:4])
        while len(self.buf) < 4 + size:
            self._fill()
        data = self.buf[4 : 4 + size]
        self.buf = self.buf[4 + size :]
        return data[:1], data[1:]

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("milter closed the connection")
        self.buf += chunk

    @staticmethod
    def message_packets(
        sender: str,
        rcpts: list[str],
        headers: list[tuple[str, str]],
        body: bytes,
        login: str | None,
        protocol: int,
    ) -> list[tuple[bytes, bool]]:
        """All packets of one message, each with whether the milter answers it (macros never;
        RCPT and headers not when it negotiated them as no-reply)."""
        macros = b"i\0BENCH\0" + (f"{{auth_authen}}\0{login}\0".encode() if login else b"")
        rcpt_reply = not protocol & P_NR_RCPT
        header_reply = not protocol & P_NR_HDR
        out = [(packet(b"D", b"M" + macros), False), (packet(b"M", f"<{sender}>\0".encode()), True)]
        out += [(packet(b"R", f"<{rcpt}>\0".encode()), rcpt_reply) for rcpt in rcpts]
        for name, value in headers:
            data = name.encode() + b"\0" + value.encode() + b"\0"
            out.append((packet(b"L", data), header_reply))
        if not protocol & P_NOEOH:
            out.append((packet(b"N"), True))
        out += [(packet(b"B", body[pos : pos + CHUNK]), True) for pos in range(0, len(body), CHUNK)]
        out.append((packet(b"E"), True))
        return out

    def send_message(self, packets: list[tuple[bytes, bool]]) -> tuple[str, float]:
        """Send a prepared message; return (final verdict, seconds to the verdict).

        Commands are pipelined in batches of BATCH, and the batch's replies read before the
        next one: a milter blocks writing replies nobody reads (a UNIX socket buffer holds
        only about a hundred small writes), so unbounded pipelining would deadlock.
        """
        start = time.perf_counter()
        for pos in range(0, len(packets), BATCH):
            batch = packets[pos : pos + BATCH]
            self.sock.sendall(b"".join(data for data, _ in batch))
            expected = sum(replies for _, replies in batch)
            while expected:
                cmd, _payload = self._read()
                if cmd == b"c":
                    expected -= 1
                elif cmd in FINAL:
                    return FINAL[cmd], time.perf_counter() - start
                # b"p" progress and modifications (b"e" chgfrom ...) precede the final reply
        raise ConnectionError("no final reply")

    def close(self) -> None:
        try:
            self.sock.sendall(packet(b"Q"))
        finally:
            self.sock.close()
