"""Delta-Chat-shaped encrypted messages of a given size (random bytes in a real packet frame).

The message shape and the armor are the tests' own (harness.messages, harness.pgppackets).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "testkit"))  # the harness package

from harness.messages import encrypted_body, encrypted_head, header_fields
from harness.pgppackets import armor


def payload(size: int) -> bytes:
    """Two v6 PKESK packets and one v2 SEIPD packet, `size` bytes in all (new format)."""
    pkesk = bytes([0xC1, 71, 6]) + os.urandom(70)
    seipd_len = size - 2 * len(pkesk) - 6
    seipd = bytes([0xD2, 0xFF]) + seipd_len.to_bytes(4, "big") + b"\x02" + os.urandom(seipd_len - 1)
    return pkesk + pkesk + seipd


def _head(sender: str) -> str:
    return encrypted_head(sender, message_id=f"{os.urandom(8).hex()}@localhost")


def headers(sender: str) -> list[tuple[str, str]]:
    """The header fields, as Postfix hands them to a milter (folds as LF + space)."""
    return header_fields(_head(sender))


def body(message_size: int) -> bytes:
    """The MIME body of a message of about `message_size` bytes in all."""
    return encrypted_body(
        armor(payload(max(400, (message_size - 900) * 3 * 64 // (4 * 66))))
    ).encode()


def full_message(sender: str, message_size: int) -> bytes:
    """Headers and body as one CRLF message (for SMTP)."""
    return _head(sender).encode() + b"\r\n" + body(message_size)
