"""Milter test material: real GnuPG messages, the Delta Chat samples, message builders.

Test modules cannot import a helper module from this folder (its package name would be
`milter`, which is pymilter's), so helpers are handed out as fixtures.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gnupg
import pytest

SAMPLES = Path("/work/shared/samples/deltachat-2.65")
if not SAMPLES.is_dir():  # the repo's own location relative to the shared folder
    SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples" / "deltachat-2.65"

ALICE = "alice1234@chat.example"
BOB = "bob123456@chat.example"
BOUNDARY = "18eb06d86b123ffe_546051fd537078a1_a23cbb36c29b26fd"


# -- OpenPGP packet rewriting (independent of the code under test) --


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


# -- message builders (exact Delta Chat shape) --


def encrypted_message(
    armored: str,
    *,
    sender: str = ALICE,
    boundary: str = BOUNDARY,
    protocol: str | None = '; protocol="application/pgp-encrypted"',
    extra_headers: str = "",
) -> bytes:
    """A PGP/MIME message shaped like Delta Chat's (CRLF throughout)."""
    ctype = f'multipart/encrypted{protocol or ""};\r\n boundary="{boundary}"'
    text = (
        f"From: <{sender}>\r\n"
        "Date: Sat, 21 Nov 2026 05:41:21 +0000\r\n"
        "Message-ID: <3633f881-f839-4bb2-8257-fa83a4398f1e@localhost>\r\n"
        "MIME-Version: 1.0\r\n"
        'To: "hidden-recipients": ;\r\n'
        "Subject: [...]\r\n"
        f"{extra_headers}"
        f"Content-Type: {ctype}\r\n"
        "\r\n\r\n"
        f"--{boundary}\r\n"
        'Content-Type: application/pgp-encrypted; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: 7bit\r\n"
        "\r\n"
        "Version: 1\r\n"
        "\r\n"
        f"--{boundary}\r\n"
        'Content-Type: application/octet-stream; name="encrypted.asc"; charset="utf-8"\r\n'
        "Content-Description: OpenPGP encrypted message\r\n"
        'Content-Disposition: inline; filename="encrypted.asc";\r\n'
        "Content-Transfer-Encoding: 7bit\r\n"
        "\r\n"
        f"{armored}"
        "\r\n"
        f"--{boundary}--\r\n"
    )
    return text.encode()


def secure_join_message(
    header: str = "vc-request",
    body: str = "Secure-Join: vc-request",
    *,
    sender: str = ALICE,
    to: str = BOB,
    part_type: str = 'text/plain; charset="utf-8"',
) -> bytes:
    """A legacy cleartext Secure-Join request as Delta Chat 2.65 sends it."""
    b = "18eb06ecead8da2f_7d87d86c5a589e75_ec20a9b83d76310b"
    return (
        f"From: <{sender}>\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/mixed;\r\n boundary="{b}"\r\n'
        f"To: <{to}>\r\n"
        f"Subject: Message from {sender}\r\n"
        "Chat-Version: 1.0\r\n"
        f"Secure-Join: {header}\r\n"
        "Secure-Join-Invitenumber: GtNuRSH4EZvSFLgXiK6eTuqI\r\n"
        "\r\n\r\n"
        f"--{b}\r\n"
        f"Content-Type: {part_type}\r\n"
        "Content-Transfer-Encoding: 7bit\r\n"
        "\r\n"
        f"{body}\r\n"
        f"--{b}--\r\n"
    ).encode()


def plain_message(sender: str = ALICE, to: str = BOB, extra: str = "", body: str = "hi") -> bytes:
    return (f"From: <{sender}>\r\nTo: <{to}>\r\nSubject: hello\r\n{extra}\r\n{body}\r\n").encode()


@dataclass
class Sample:
    name: str
    data: bytes
    sender: str
    rcpt: str


def load_sample(path: Path) -> Sample:
    """As the README says: LF -> CRLF, Return-Path and Received dropped (folds included)."""
    raw = path.read_bytes()
    rcpt = re.search(rb"for <([^>]+)>", raw).group(1).decode()
    head, sep, body = raw.partition(b"\n\n")
    kept: list[bytes] = []
    skipping = False
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t"):
            if not skipping:
                kept.append(line)
            continue
        skipping = line.lower().startswith((b"return-path:", b"received:"))
        if not skipping:
            kept.append(line)
    data = (b"\n".join(kept) + sep + body).replace(b"\n", b"\r\n")
    sender = re.search(rb"^From: <?([^>\r]+)>?\r$", data, re.M).group(1).decode()
    return Sample(path.name, data, sender, rcpt)


@pytest.fixture(scope="session")
def samples() -> list[Sample]:
    paths = sorted(SAMPLES.glob("*.eml"))
    assert len(paths) == 22, f"samples missing under {SAMPLES}"
    return [load_sample(p) for p in paths]


class GnuPG:
    """A temporary keyring with keys for ALICE and BOB (ed25519 / cv25519)."""

    def __init__(self, home: Path) -> None:
        home.chmod(0o700)
        self.gpg = gnupg.GPG(gnupghome=str(home))
        for addr in (ALICE, BOB):
            spec = self.gpg.gen_key_input(
                key_type="EDDSA",
                key_curve="ed25519",
                subkey_type="ECDH",
                subkey_curve="cv25519",
                subkey_usage="encrypt",
                name_email=addr,
                no_protection=True,
                expire_date=0,
            )
            key = self.gpg.gen_key(spec)
            assert key.fingerprint, key.stderr

    def encrypt(self, text: str | bytes, recipients=(ALICE, BOB), symmetric=None) -> str:
        """GnuPG's armored output (legacy PKESK headers, CRC line)."""
        if symmetric:
            result = self.gpg.encrypt(text, None, symmetric=True, passphrase=symmetric, armor=True)
        else:
            result = self.gpg.encrypt(text, list(recipients), always_trust=True, armor=True)
        assert result.ok, result.stderr
        return str(result)

    def decrypt_payload(self, payload: bytes, passphrase: str | None = None) -> bytes:
        """Decrypt a binary OpenPGP message: proof that a rewritten stream is real."""
        result = self.gpg.decrypt(payload, passphrase=passphrase)
        assert result.ok, result.stderr
        return result.data


@pytest.fixture(scope="session")
def gpg(tmp_path_factory) -> GnuPG:
    return GnuPG(tmp_path_factory.mktemp("gnupg"))


@dataclass
class Builders:
    """Message builders and packet tools, handed to tests as one fixture."""

    encrypted_message: Callable[..., bytes] = encrypted_message
    secure_join_message: Callable[..., bytes] = secure_join_message
    plain_message: Callable[..., bytes] = plain_message
    armor: Callable[..., str] = armor
    dearmor_gpg: Callable[[str], bytes] = dearmor_gpg
    parse_packets: Callable[[bytes], list[Packet]] = parse_packets
    serialize: Callable[[list[Packet], str], bytes] = serialize
    encode_new: Callable[..., bytes] = encode_new
    encode_legacy: Callable[..., bytes] = encode_legacy
    encode_partial: Callable[..., bytes] = encode_partial
    crc24: Callable[[bytes], int] = crc24
    Packet: type = Packet
    alice: str = ALICE
    bob: str = BOB


@pytest.fixture(scope="session")
def build() -> Builders:
    return Builders()
