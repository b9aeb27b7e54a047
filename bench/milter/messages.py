"""Delta-Chat-shaped encrypted messages of a given size (random bytes in a real packet frame)."""

from __future__ import annotations

import base64
import os

from chatmail_services.milter.openpgp import crc24

BOUNDARY = "18eb06d86b123ffe_546051fd537078a1_a23cbb36c29b26fd"


def payload(size: int) -> bytes:
    """Two v6 PKESK packets and one v2 SEIPD packet, `size` bytes in all (new format)."""
    pkesk = bytes([0xC1, 71, 6]) + os.urandom(70)
    seipd_len = size - 2 * len(pkesk) - 6
    seipd = bytes([0xD2, 0xFF]) + seipd_len.to_bytes(4, "big") + b"\x02" + os.urandom(seipd_len - 1)
    return pkesk + pkesk + seipd


def armor(data: bytes) -> str:
    text = base64.b64encode(data).decode()
    lines = ["-----BEGIN PGP MESSAGE-----", ""]
    lines += [text[i : i + 64] for i in range(0, len(text), 64)]
    lines.append("=" + base64.b64encode(crc24(data).to_bytes(3, "big")).decode())
    lines.append("-----END PGP MESSAGE-----")
    return "\r\n".join(lines) + "\r\n"


def headers(sender: str) -> list[tuple[str, str]]:
    return [
        ("From", f"<{sender}>"),
        ("Date", "Sat, 21 Nov 2026 05:41:21 +0000"),
        ("Message-ID", f"<{os.urandom(8).hex()}@localhost>"),
        ("MIME-Version", "1.0"),
        ("To", '"hidden-recipients": ;'),
        ("Subject", "[...]"),
        (
            "Content-Type",
            f'multipart/encrypted; protocol="application/pgp-encrypted";\n boundary="{BOUNDARY}"',
        ),
    ]


def body(message_size: int) -> bytes:
    """The MIME body of a message of about `message_size` bytes in all."""
    armored = armor(payload(max(400, (message_size - 900) * 3 * 64 // (4 * 66))))
    return (
        "\r\n"
        f"--{BOUNDARY}\r\n"
        'Content-Type: application/pgp-encrypted; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: 7bit\r\n\r\nVersion: 1\r\n\r\n"
        f"--{BOUNDARY}\r\n"
        'Content-Type: application/octet-stream; name="encrypted.asc"; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: 7bit\r\n\r\n"
        f"{armored}\r\n"
        f"--{BOUNDARY}--\r\n"
    ).encode()


def full_message(sender: str, message_size: int) -> bytes:
    """Headers and body as one CRLF message (for SMTP)."""
    head = "".join(f"{n}: {v.replace(chr(10), chr(13) + chr(10))}\r\n" for n, v in headers(sender))
    return head.encode() + b"\r\n" + body(message_size)
