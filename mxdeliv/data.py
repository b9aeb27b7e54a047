"""The body of `POST /mxdeliv`: the message as in SMTP DATA, and back into the message.

The sender posts the DATA bytes as they would go over SMTP: CRLF line ends, dot-stuffed (a
line starting with `.` has a second `.` in front), ending in CRLF, without the terminating
`.CRLF`. Pure functions, no I/O. Whatever does not have that shape raises `InvalidData`: a bare
CR or LF, no CRLF at the end, a line that is a lone `.` (an unescaped `CRLF.CRLF`, or `.CRLF`
at the start).
"""

from __future__ import annotations

CRLF = b"\r\n"


class InvalidData(ValueError):
    """The body is not SMTP DATA; the message says what is wrong (never any of its bytes)."""


def check_data(body: bytes) -> None:
    """Raise `InvalidData` unless `body` has the shape of SMTP DATA (see the module)."""
    if not body.endswith(CRLF):
        raise InvalidData("the body does not end in CRLF")
    pairs = body.count(CRLF)
    if body.count(b"\r") != pairs or body.count(b"\n") != pairs:
        raise InvalidData("a bare CR or LF")
    if body.startswith(b"." + CRLF) or b"\r\n.\r\n" in body:
        raise InvalidData("a line that is a lone '.'")


def unstuff(body: bytes) -> bytes:
    """The message of a DATA body: each line's leading `.` removed (RFC 5321 4.5.2).

    Raises `InvalidData` for a body that is not DATA (`check_data`)."""
    check_data(body)
    message = body.replace(b"\r\n.", CRLF)
    return message[1:] if message.startswith(b".") else message


def stuff(message: bytes) -> bytes:
    """The DATA body of a message with CRLF line ends (what a sender posts): a `.` put before
    each line that starts with one. The inverse of `unstuff`."""
    stuffed = message.replace(b"\r\n.", b"\r\n..")
    return b"." + stuffed if stuffed.startswith(b".") else stuffed
