"""OpenPGP packet framing and ASCII armor, written independently of the code under test.

Tests rewrite GnuPG's output into every header shape (legacy, new, partial lengths) and armor
payloads as Delta Chat does; the milter's own reader must then agree.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass


@dataclass
class Packet:
    tag: int
    body: bytes


def parse_packets(data: bytes) -> list[Packet]:
    """Minimal packet reader for GnuPG output (legacy or new headers, partial lengths)."""
    packets, pos = [], 0
    while pos < len(data):
        first = data[pos]
        pos += 1
        assert first & 0x80
        if first & 0x40:
            tag, body = first & 0x3F, b""
            while True:
                octet = data[pos]
                if octet < 192:
                    n, pos, more = octet, pos + 1, False
                elif octet < 224:
                    n, pos, more = ((octet - 192) << 8) + data[pos + 1] + 192, pos + 2, False
                elif octet == 255:
                    n, pos, more = int.from_bytes(data[pos + 1 : pos + 5], "big"), pos + 5, False
                else:
                    n, pos, more = 1 << (octet & 0x1F), pos + 1, True
                body += data[pos : pos + n]
                pos += n
                if not more:
                    break
        else:
            tag, kind = (first >> 2) & 0xF, first & 3
            size = (1, 2, 4)[kind]
            n = int.from_bytes(data[pos : pos + size], "big")
            pos += size
            body = data[pos : pos + n]
            pos += n
        packets.append(Packet(tag, body))
    return packets


def new_length(n: int, style: str = "auto") -> bytes:
    """New-format length octets: style auto (shortest), 1, 2 or 5 (octets)."""
    if style == "auto":
        style = "1" if n < 192 else "2" if n < 8384 else "5"
    if style == "1":
        assert n < 192
        return bytes([n])
    if style == "2":
        assert 192 <= n < 8384
        n -= 192
        return bytes([(n >> 8) + 192, n & 0xFF])
    return b"\xff" + n.to_bytes(4, "big")


def encode_new(tag: int, body: bytes, style: str = "auto") -> bytes:
    return bytes([0xC0 | tag]) + new_length(len(body), style)


def encode_partial(tag: int, body: bytes, chunk_power: int = 9) -> bytes:
    """New-format header with partial body lengths (chunks of 2**chunk_power, then the rest)."""
    out = bytearray([0xC0 | tag])
    chunk = 1 << chunk_power
    pos = 0
    while len(body) - pos > chunk:
        out.append(224 + chunk_power)
        out += body[pos : pos + chunk]
        pos += chunk
    rest = body[pos:]
    out += new_length(len(rest)) + rest
    return bytes(out)


def encode_legacy(tag: int, body: bytes, size: int | None = None) -> bytes:
    """Legacy header with a 1-, 2- or 4-octet length (shortest by default); tag < 16."""
    assert tag < 16
    if size is None:
        size = 1 if len(body) < 256 else 2 if len(body) < 65536 else 4
    kind = {1: 0, 2: 1, 4: 2}[size]
    return bytes([0x80 | (tag << 2) | kind]) + len(body).to_bytes(size, "big")


def serialize(packets: list[Packet], shape: str) -> bytes:
    """Re-encode packets: 'legacy' (legacy headers where the tag fits in 4 bits, i.e. all but
    SEIPD, as GnuPG emits), 'new' (all new-format), 'partial' (new, SEIPD with partial body
    lengths)."""
    out = b""
    for p in packets:
        if shape == "legacy" and p.tag < 16:
            out += encode_legacy(p.tag, p.body) + p.body
        elif shape == "partial" and p.tag == 18:
            out += encode_partial(p.tag, p.body)
        else:
            out += encode_new(p.tag, p.body) + p.body
    return out


def crc24(data: bytes) -> int:
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def armor(
    payload: bytes,
    *,
    headers: tuple[str, ...] = (),
    crc: bool = True,
    width: int = 64,
    eol: str = "\r\n",
) -> str:
    """ASCII-armor a payload the way Delta Chat does (CRLF lines, CRC24 line)."""
    text = base64.b64encode(payload).decode()
    lines = ["-----BEGIN PGP MESSAGE-----", *headers, ""]
    lines += [text[i : i + width] for i in range(0, len(text), width)]
    if crc:
        lines.append("=" + base64.b64encode(crc24(payload).to_bytes(3, "big")).decode())
    lines.append("-----END PGP MESSAGE-----")
    return eol.join(lines) + eol


def dearmor_gpg(text: str) -> bytes:
    body = text.split("\n\n", 1)[1].split("-----END", 1)[0]
    lines = [line.strip() for line in body.splitlines() if line.strip()]
    return base64.b64decode("".join(line for line in lines if not line.startswith("=")))
