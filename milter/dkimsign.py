"""DKIM signing of outgoing mail (and of the relay's own bounces) through dkimpy.

RSA-SHA256 with the `[dkim] key_file` key, `d=` the mail domain, `s=` the selector,
canonicalization relaxed/simple. Signed: every header field present except those RFC 6376
advises against (Received, Return-Path, Bcc, ...), plus Autocrypt and Content-Type; the
`OVERSIGNED` fields get one more entry in `h=` than they occur, so none can be added later
(as the reference relay's OpenDKIM `OversignHeaders`).
"""

from __future__ import annotations

import base64
import time

import dkim
import dkim.crypto

from chatmail_services import dkimkey

from . import dkimcanon, dkimcrypto, dkimhash

dkimcrypto.install()

ALGORITHM = b"rsa-sha256"
POLICY = dkimcanon.policy(b"relaxed/simple")
NAME = b"DKIM-Signature"

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
    """Signs messages of `domain` with one RSA key; safe to share between threads.

    `sign` is dkimpy's `DKIM(message, linesep=b"\\n").sign(...)` step for step (dkimpy 1.1.4, 1.1.8)
    with the work around it done once or faster: the key is parsed once, the message split by
    `dkimcanon.split_message` (dkimpy's parser on the header section only) and the relaxed
    header canonicalization is `dkimcanon`'s; dkimpy's `gen_header` makes the field. Tests
    compare the result byte for byte with stock dkimpy's.
    """

    def __init__(self, selector: str, domain: str, private_pem: bytes) -> None:
        self.selector = selector.encode("ascii")
        self.domain = domain.encode("idna")
        try:
            self.key = dkim.crypto.parse_pem_private_key(private_pem)
        except dkim.crypto.UnparsableKeyError as exc:
            raise dkim.KeyFormatError(str(exc)) from None
        self.sign(b"From: <x@x>\r\n\r\n")  # key ok?

    def sign(self, message: bytes) -> bytes:
        """The DKIM-Signature field value for `message` (CRLF message), folded with LF and
        starting with a space, without the name and the final line break."""
        headers, body = dkimcanon.split_message(message)
        names = [name.decode("ascii", "replace") for name, _ in headers]
        include = tuple(name.encode("ascii") for name in header_list(names))
        if b"from" not in include:
            raise dkim.ParameterError("The From header field MUST be signed")
        for name in set(include).intersection(dkim.DKIM.SHOULD_NOT):
            raise dkim.ParameterError(f"The {name!r} header field SHOULD NOT be signed")
        hasher = dkim.HASH_ALGORITHMS[ALGORITHM]
        fields = [
            (b"v", b"1"),
            (b"a", ALGORITHM),
            (b"c", POLICY.to_c_value()),
            (b"d", self.domain),
            (b"i", b"@" + self.domain),
            (b"q", b"dns/txt"),
            (b"s", self.selector),
            (b"t", str(int(time.time())).encode("ascii")),
            (b"h", b" : ".join(include)),
            (b"bh", base64.b64encode(hasher(POLICY.canonicalize_body(body)).digest())),
            (b"b", b"0" * 60),  # dkimpy's placeholder: b= folds onto a line of its own
        ]
        return b" " + self._field_value(fields, include, headers).rstrip(b"\r\n")

    def _field_value(self, fields: list[tuple[bytes, bytes]], include, headers) -> bytes:
        """dkimpy's `gen_header` (not `standardize`d): hash, sign, fold with LF."""
        value = b"; ".join(b"=".join(x) for x in fields)
        value = dkimcanon.strip_b_value(dkim.fold(value, namelen=len(NAME), linesep=b"\r\n"))
        h = dkim.HashThrough(dkim.HASH_ALGORITHMS[ALGORITHM](), False)
        canonical = POLICY.canonicalize_headers(headers)
        dkimhash.hash_headers(h, POLICY, canonical, include, (NAME, b" " + value))
        try:
            signature = dkim.RSASSA_PKCS1_v1_5_sign(h, self.key)
        except dkim.crypto.DigestTooLargeError:
            raise dkim.ParameterError("digest too large for modulus") from None
        fields[-1] = (b"b", base64.b64encode(bytes(signature)))
        value = b"; ".join(b"=".join(x) for x in fields) + b"\n"
        return dkim.fold(value, namelen=len(NAME), linesep=b"\n")


def load_signer(selector: str, domain: str, key_file: str) -> Signer:
    """A signer with the key file's key; `DkimKeyError` (one line) if it cannot be used."""
    pem = dkimkey.load_private_pem(key_file)
    try:
        return Signer(selector, domain, pem)
    except dkim.DKIMException as exc:
        raise dkimkey.DkimKeyError(f"{key_file}: dkimpy cannot sign with this key: {exc}") from None
