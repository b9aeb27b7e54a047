"""A minimal TURN client (RFC 5766 Allocate with long-term credentials, RFC 5389), written
from the RFCs for the tests: does a TURN server grant an allocation to these credentials?"""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import struct

MAGIC = 0x2112A442
ALLOCATE, ALLOCATE_OK, ALLOCATE_ERROR = 0x0003, 0x0103, 0x0113
USERNAME, MESSAGE_INTEGRITY, ERROR_CODE, REALM, NONCE = 0x0006, 0x0008, 0x0009, 0x0014, 0x0015
REQUESTED_TRANSPORT = 0x0019
UDP = b"\x11\x00\x00\x00"


def _attr(kind: int, value: bytes) -> bytes:
    return struct.pack("!HH", kind, len(value)) + value + b"\0" * (-len(value) % 4)


def _message(kind: int, txid: bytes, attrs: bytes) -> bytes:
    return struct.pack("!HHI", kind, len(attrs), MAGIC) + txid + attrs


def _parse(data: bytes) -> tuple[int, dict[int, bytes]]:
    kind, length, _magic = struct.unpack("!HHI", data[:8])
    attrs, pos = {}, 20
    while pos + 4 <= 20 + length:
        a_kind, a_len = struct.unpack("!HH", data[pos : pos + 4])
        attrs.setdefault(a_kind, data[pos + 4 : pos + 4 + a_len])
        pos += 4 + a_len + (-a_len % 4)
    return kind, attrs


def _exchange(sock: socket.socket, message: bytes) -> tuple[int, dict[int, bytes]]:
    sock.send(message)
    return _parse(sock.recv(4096))


def allocate(host: str, port: int, username: str, password: str) -> int:
    """Try an allocation; 0 if granted, else the TURN error code (401: not authenticated)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.connect((host, port))
        kind, attrs = _exchange(sock, _message(ALLOCATE, os.urandom(12), _attr(0x0019, UDP)))
        assert kind == ALLOCATE_ERROR and ERROR_CODE in attrs, (hex(kind), attrs)
        realm, nonce = attrs[REALM], attrs[NONCE]
        body = _attr(REQUESTED_TRANSPORT, UDP)
        body += _attr(USERNAME, username.encode()) + _attr(REALM, realm) + _attr(NONCE, nonce)
        txid = os.urandom(12)
        # MESSAGE-INTEGRITY: HMAC-SHA1 over the message with its length counting the attribute
        key = hashlib.md5(f"{username}:{realm.decode()}:{password}".encode()).digest()
        header = struct.pack("!HHI", ALLOCATE, len(body) + 24, MAGIC) + txid
        integrity = hmac.new(key, header + body, hashlib.sha1).digest()
        kind, attrs = _exchange(sock, header + body + _attr(MESSAGE_INTEGRITY, integrity))
        if kind == ALLOCATE_OK:
            return 0
        code = attrs.get(ERROR_CODE, b"\0\0\0\0")
        return code[2] * 100 + code[3]
