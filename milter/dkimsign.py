"""DKIM signing of outgoing mail (and of the relay's own bounces) through dkimpy.

RSA-SHA256 with the `[dkim] key_file` key, `d=` the mail domain, `s=` the selector,
canonicalization relaxed/simple. Signed: every header field present except those RFC 6376
advises against (Received, Return-Path, Bcc, ...), plus Autocrypt and Content-Type; the
`OVERSIGNED` fields get one more entry in `h=` than they occur, so none can be added later
(as the reference relay's OpenDKIM `OversignHeaders`).
"""

from __future__ import annotations

import dkim

from chatmail_services import dkimkey

from . import dkimcrypto

dkimcrypto.install()

ALWAYS_SIGNED = ("autocrypt", "content-type")
OVERSIGNED = (
    "from",
    "reply-to",
    "subject",
    "date",
    "to",
    "cc",
    "resent-date",
    "resent-from",
    "resent-sender",
    "resent-to",
    "resent-cc",
    "resent-message-id",
    "in-reply-to",
    "references",
    "list-id",
    "list-help",
    "list-unsubscribe",
    "list-subscribe",
    "list-post",
    "list-owner",
    "list-archive",
    "autocrypt",
)
_OVERSIGNED_PREFIXES = ("resent-", "list-")
_NOT_SIGNED = {name.decode() for name in dkim.DKIM.SHOULD_NOT}


def header_list(names: list[str]) -> list[str]:
    """The `h=` list for a message with these header field names (in order, any case)."""
    present = [name.lower() for name in names if name.lower() not in _NOT_SIGNED]
    signed = present + [name for name in ALWAYS_SIGNED if name not in present]
    extra = [name for name in OVERSIGNED]
    extra += sorted(
        {n for n in present if n.startswith(_OVERSIGNED_PREFIXES) and n not in OVERSIGNED}
    )
    return signed + extra


class Signer:
    """Signs messages of `domain` with one RSA key; safe to share between threads."""

    def __init__(self, selector: str, domain: str, private_pem: bytes) -> None:
        self.selector = selector.encode("ascii")
        self.domain = domain.encode("idna")
        self.pem = private_pem
        dkim.DKIM(b"From: <x@x>\r\n\r\n").sign(self.selector, self.domain, self.pem)  # key ok?

    def sign(self, message: bytes) -> bytes:
        """The DKIM-Signature field value for `message` (CRLF message), folded with LF and
        starting with a space, without the name and the final line break."""
        signer = dkim.DKIM(message, linesep=b"\n")
        names = [name.decode("ascii", "replace") for name, _ in signer.headers]
        field = signer.sign(
            self.selector,
            self.domain,
            self.pem,
            canonicalize=(b"relaxed", b"simple"),
            include_headers=[name.encode("ascii") for name in header_list(names)],
        )
        name, _, value = field.partition(b":")
        assert name == b"DKIM-Signature"
        return value.rstrip(b"\r\n")


def load_signer(selector: str, domain: str, key_file: str) -> Signer:
    """A signer with the key file's key; `DkimKeyError` (one line) if it cannot be used."""
    pem = dkimkey.load_private_pem(key_file)
    try:
        return Signer(selector, domain, pem)
    except dkim.DKIMException as exc:
        raise dkimkey.DkimKeyError(f"{key_file}: dkimpy cannot sign with this key: {exc}") from None
