"""The envelope of `POST /mxdeliv` from its header fields. Pure, no I/O.

`X-Mail-From`: the envelope sender, a bare address (no angle brackets), at most once; left out
(or empty) for the null sender of bounces. `X-Mail-To`: one recipient per field, repeated, at
least once. Field names in any case. What does not fit raises `BadEnvelope` with the one-line
SMTP reply the request is answered with.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

MAIL_FROM = "x-mail-from"
MAIL_TO = "x-mail-to"
MAX_ADDRESS = 320  # 64 octets of local part, "@", 255 of domain (RFC 5321 4.5.3.1)

BAD_SENDER = "501 5.1.7 Bad sender address syntax"
BAD_RECIPIENT = "501 5.1.3 Bad recipient address syntax"
TWO_SENDERS = "501 5.5.4 More than one X-Mail-From"
NO_RECIPIENT = "554 5.5.1 No recipients (X-Mail-To)"

# printable ASCII without space and angle brackets; a local part, "@", a domain
_ADDRESS = re.compile(r"[!-;=?-~]+@[!-;=?-~]+")


class BadEnvelope(ValueError):
    """An envelope that cannot be handed on; `reply` is the SMTP reply for the body."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


@dataclass(frozen=True)
class Envelope:
    """The envelope sender ("" for the null sender) and the recipients, in order."""

    mail_from: str
    rcpts: tuple[str, ...]


def valid_address(text: str) -> bool:
    """A bare address as the sender writes it: printable ASCII, no space or `<>`, an `@`."""
    return len(text) <= MAX_ADDRESS and _ADDRESS.fullmatch(text) is not None


def parse_envelope(fields: Iterable[tuple[str, str]]) -> Envelope:
    """The envelope from (lower-case name, value) pairs; `BadEnvelope` when it does not fit."""
    senders, rcpts = [], []
    for name, value in fields:
        if name == MAIL_FROM:
            senders.append(value.strip())
        elif name == MAIL_TO:
            rcpts.append(value.strip())
    if len(senders) > 1:
        raise BadEnvelope(TWO_SENDERS)
    mail_from = senders[0] if senders else ""
    if mail_from and not valid_address(mail_from):
        raise BadEnvelope(BAD_SENDER)
    if not rcpts:
        raise BadEnvelope(NO_RECIPIENT)
    if not all(valid_address(rcpt) for rcpt in rcpts):
        raise BadEnvelope(BAD_RECIPIENT)
    return Envelope(mail_from, tuple(rcpts))
