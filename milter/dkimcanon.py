"""dkimpy's message split and canonicalizations, computed faster with the same results.

dkimpy (the implementation of record) splits a whole message into lines with a regular
expression and canonicalizes with several regular-expression passes per header field and over
the whole body. The functions here give byte for byte what dkimpy's `rfc822_parse`,
`Relaxed.canonicalize_headers` and `Relaxed.canonicalize_body` give (property tests compare
them on arbitrary input), with plain bytes operations and dkimpy's own code wherever the input
needs real work: only the header section goes through dkimpy's line parser; whitespace is
compressed only where there is whitespace to compress. No I/O.
"""

from __future__ import annotations

import re

import dkim
from dkim import canonicalization

Headers = list[list[bytes]]  # dkimpy's form: [name, value with its line breaks, CRLF-ended]

_PRINTABLE = bytes(range(0x21, 0x7F))  # the characters of a field name
_LINE_END = re.compile(rb"\r?\n")
# dkimpy's RE_BTAG (`[;\s]b FWS = (FWS base64-char)*`, then an optional final line break):
# its FWS, `((\s*\r?\n)?\s+)?`, matches exactly what `\s*` matches, so the tag value is the
# longest run of whitespace and base64 characters that ends in a base64 character.
_B_TAG = re.compile(rb"([;\s]b\s*=)(?:[\s0-9A-Za-z+/=]*[0-9A-Za-z+/=])?(?:\r?\n\Z)?")


def _header_end(message: bytes) -> int | None:
    """The index just past the first empty line (lines end in CRLF or LF), None if none."""
    if not message or message[:1] == b"\n":
        return len(message[:1])
    if message[:2] == b"\r\n":
        return 2
    lf, crlf = message.find(b"\n\n"), message.find(b"\n\r\n")
    if lf != -1 and (crlf == -1 or lf < crlf):
        return lf + 2
    return crlf + 3 if crlf != -1 else None  # else: at most a last empty line, no body


def _lines(data: bytes) -> list[bytes]:
    """`data` split at CRLF or LF (dkimpy's `re.split(b"\\r?\\n", data)`)."""
    if b"\n" in data.replace(b"\r\n", b""):  # a line ending in LF alone
        return _LINE_END.split(data)
    return data.split(b"\r\n")


def _header_fields(block: bytes) -> Headers:
    """dkimpy's header loop over the lines of `block`, up to its first empty line."""
    headers: Headers = []
    for line in _lines(block):
        if not line:
            break
        if line[0] in (0x09, 0x20):
            headers[-1][1] += line + b"\r\n"  # IndexError on a leading one, as in dkimpy
            continue
        colon = line.find(b":", 1)  # dkimpy: the shortest `[\x21-\x7e]+?` before a colon
        if colon > 0 and not line[:colon].translate(None, _PRINTABLE):
            headers.append([line[:colon], line[colon + 1 :] + b"\r\n"])
        elif not line.startswith(b"From "):
            raise dkim.MessageFormatError(f"Unexpected characters in RFC822 header: {line!r}")
    return headers


def split_message(message: bytes) -> tuple[Headers, bytes]:
    """dkimpy's `rfc822_parse(message)`: (header fields, body with CRLF line ends).

    Raises `dkim.MessageFormatError` where dkimpy does (a header line without a colon).
    """
    end = _header_end(message)
    if end is None:
        return _header_fields(message), b""
    body = message[end:]
    if b"\n" in body.replace(b"\r\n", b""):  # a line ending in LF alone
        body = b"\r\n".join(_LINE_END.split(body))
    return _header_fields(message[:end]), body


def strip_b_value(value: bytes) -> bytes:
    """A DKIM-Signature value with its b= tag's value removed (dkimpy's `RE_BTAG.sub`)."""
    return _B_TAG.sub(b"\\1", value)


def _compress(value: bytes) -> bytes:
    """Every run of spaces and tabs as one space (dkimpy's `compress_whitespace`)."""
    if b"\t" in value:
        value = value.replace(b"\t", b" ")
    while b"  " in value:
        value = value.replace(b"  ", b" ")
    return value


def _unfold(value: bytes) -> bytes:
    """The value without its CRLF line breaks (dkimpy's `unfold_header_value`); a LF alone,
    which dkimpy's own split never leaves in a value, goes to dkimpy (1.1.4 keeps it)."""
    unfolded = value.replace(b"\r\n", b"")
    return canonicalization.unfold_header_value(value) if b"\n" in unfolded else unfolded


def relaxed_headers(headers: list) -> list[tuple[bytes, bytes]]:
    """dkimpy's `Relaxed.canonicalize_headers`."""
    return [
        (name.lower().rstrip(), _compress(_unfold(value)).strip() + b"\r\n")
        for name, value in headers
    ]


def relaxed_body(body: bytes) -> bytes:
    """dkimpy's `Relaxed.canonicalize_body`."""
    if b" \r\n" in body or b"\t\r\n" in body:  # trailing whitespace on some line
        lines = body.split(b"\r\n")
        body = b"\r\n".join([line.rstrip(b" \t") for line in lines[:-1]] + lines[-1:])
    body = _compress(body)
    return canonicalization.correct_empty_body(canonicalization.strip_trailing_lines(body))


class FastRelaxed(canonicalization.Relaxed):
    """dkimpy's relaxed algorithm with the faster, equal functions above."""

    @staticmethod
    def canonicalize_headers(headers):  # type: ignore[override]
        return relaxed_headers(headers)

    @staticmethod
    def canonicalize_body(body):  # type: ignore[override]
        return relaxed_body(body)


ALGORITHMS = {b"simple": canonicalization.Simple, b"relaxed": FastRelaxed}


def policy(c_value: bytes) -> canonicalization.CanonicalizationPolicy:
    """dkimpy's `CanonicalizationPolicy.from_c_value` with `FastRelaxed` for relaxed.

    Raises `InvalidCanonicalizationPolicyError` for a value dkimpy refuses.
    """
    stock = canonicalization.CanonicalizationPolicy.from_c_value(c_value)
    return canonicalization.CanonicalizationPolicy(
        ALGORITHMS[stock.header_algorithm.name], ALGORITHMS[stock.body_algorithm.name]
    )
