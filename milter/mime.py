"""A small, strict MIME reader over bytes: headers, Content-Type, multipart split, decoding.

Byte-exact: lines end in CRLF as received; nothing is normalised. Malformed input is reported
with `None` or an empty result, never repaired. Works on any buffer with `find` (bytes, mmap).
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass

Headers = list[tuple[str, str]]  # (lower-cased name, unfolded value without leading space)

_FIELD_NAME = re.compile(r"[!-9;-~]+")
_TOKEN = r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+"
_QUOTED = r'"(?:[^"\\\r\n]|\\[^\r\n])*"'
_PARAM = re.compile(rf"\s*;\s*({_TOKEN})\s*=\s*({_TOKEN}|{_QUOTED})\s*")
_MEDIA = re.compile(rf"\s*({_TOKEN})/({_TOKEN})\s*")
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")


@dataclass(frozen=True)
class ContentType:
    maintype: str
    subtype: str
    params: dict[str, str]

    @property
    def type(self) -> str:
        return f"{self.maintype}/{self.subtype}"


@dataclass
class Message:
    """A message: its header fields and a buffer holding the body (bytes or mmap).

    `crlf` is False when the header section was not CRLF-terminated (e.g. LF-only input).
    """

    headers: Headers
    body: bytes
    crlf: bool = True

    def get_all(self, name: str) -> list[str]:
        return header_values(self.headers, name)


def header_values(headers: Headers, name: str) -> list[str]:
    name = name.lower()
    return [value for key, value in headers if key == name]


def parse_header_block(block: bytes) -> Headers | None:
    """Parse CRLF-separated header lines (without the blank line); None if malformed."""
    headers: Headers = []
    if not block:
        return headers
    for line in block.split(b"\r\n"):
        if b"\n" in line or b"\r" in line:
            return None
        if line[:1] in (b" ", b"\t"):
            if not headers:
                return None
            name, value = headers[-1]
            headers[-1] = (name, value + line.decode("utf-8", "surrogateescape"))
            continue
        name, sep, value = line.partition(b":")
        text = name.decode("ascii", "replace")
        if not sep or not _FIELD_NAME.fullmatch(text):
            return None
        headers.append((text.lower(), value.decode("utf-8", "surrogateescape")))
    return [(name, value.strip(" \t")) for name, value in headers]


def parse_message(data: bytes) -> Message:
    """Split a whole message into header fields and body, keeping the body bytes as they are.

    A header section not terminated by CRLF CRLF (LF-only mail) is parsed leniently, so the
    From check still sees the headers, but the message is marked `crlf=False`.
    """
    end = data.find(b"\r\n\r\n")
    lf_end = data.find(b"\n\n")
    if end != -1 and (lf_end == -1 or lf_end > end):
        headers = parse_header_block(bytes(data[:end]))
        if headers is not None:
            return Message(headers, data[end + 4 :])
    if lf_end == -1:
        lf_end, body_start = len(data), len(data)
    else:
        body_start = lf_end + 2
    block = bytes(data[:lf_end]).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    headers = parse_header_block(block) or []
    return Message(headers, data[body_start:], crlf=False)


def parse_content_type(value: str | None) -> ContentType | None:
    """Parse a Content-Type value; None when absent or malformed (RFC 2231 not supported)."""
    if value is None:
        return ContentType("text", "plain", {})
    match = _MEDIA.match(value)
    if not match:
        return None
    params: dict[str, str] = {}
    pos = match.end()
    while pos < len(value):
        param = _PARAM.match(value, pos)
        if not param:
            if value[pos:].strip() in ("", ";"):
                break
            return None
        name, raw = param.group(1).lower(), param.group(2)
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        if name in params or "*" in name:
            return None
        params[name] = raw
        pos = param.end()
    return ContentType(match.group(1).lower(), match.group(2).lower(), params)


def content_type(headers: Headers) -> ContentType | None:
    """The single Content-Type of a header list (default text/plain); None if several/bad."""
    values = header_values(headers, "content-type")
    if len(values) > 1:
        return None
    return parse_content_type(values[0] if values else None)


def split_multipart(body: bytes, boundary: str) -> list[tuple[int, int]] | None:
    """Return (start, end) of each body part, byte-exact; None if the structure is broken.

    A part runs from after its delimiter line's CRLF to just before the CRLF that precedes
    the next delimiter. The close delimiter must be present.
    """
    if not _BOUNDARY.fullmatch(boundary):
        return None
    delim = b"--" + boundary.encode("ascii")

    def delimiter_at(pos: int) -> tuple[int, bool] | None:
        """If a delimiter line starts at pos: (position after its CRLF, is_close)."""
        after = pos + len(delim)
        if body[after : after + 2] == b"--":
            return after + 2, True
        eol = body.find(b"\r\n", after)
        if eol == -1 or body[after:eol].strip(b" \t"):
            return None
        return eol + 2, False

    def next_delimiter(start: int) -> int:
        """Position of the next delimiter line at or after start (it follows a CRLF)."""
        pos = start
        while True:
            found = body.find(b"\r\n" + delim, pos)
            if found == -1:
                return -1
            if delimiter_at(found + 2) is not None:
                return found
            pos = found + 2

    if body[: len(delim)] == delim and delimiter_at(0) is not None:
        pos = 0
    else:
        found = next_delimiter(0)
        if found == -1:
            return None
        pos = found + 2
    parts = []
    while True:
        line = delimiter_at(pos)
        if line is None:
            return None
        after, is_close = line
        if is_close:
            return parts
        found = next_delimiter(after)
        if found == -1:
            return None
        parts.append((after, found))
        pos = found + 2


def split_part(part: bytes) -> tuple[Headers, bytes] | None:
    """Split one body part into its headers and body; None if malformed."""
    if part[:2] == b"\r\n":
        return [], part[2:]
    end = part.find(b"\r\n\r\n")
    if end == -1:
        return None
    headers = parse_header_block(part[:end])
    if headers is None:
        return None
    return headers, part[end + 4 :]


def transfer_decode(headers: Headers, body: bytes) -> bytes | None:
    """Undo the Content-Transfer-Encoding; None if unknown, ambiguous or undecodable."""
    values = header_values(headers, "content-transfer-encoding")
    if len(values) > 1:
        return None
    cte = values[0].strip().lower() if values else "7bit"
    if cte in ("7bit", "8bit", "binary"):
        return body
    try:
        if cte == "base64":
            return binascii.a2b_base64(body)
        if cte == "quoted-printable":
            return binascii.a2b_qp(body)
    except (binascii.Error, ValueError):
        return None
    return None


_ANGLE = re.compile(r"<([^<>]*)>")
# local@domain, the domain a name or an address literal (`[192.0.2.1]`, `[IPv6:...]`).
_ADDR = re.compile(r"[^\s<>()\[\]\",;:\\@]+@(?:[^\s<>()\[\]\",;:\\@]+|\[[0-9A-Za-z:.]+\])")
_QUOTED_OR_COMMENT = re.compile(r'"(?:[^"\\]|\\.)*"|\((?:[^()\\]|\\.)*\)')


def single_address(value: str) -> str | None:
    """The one mailbox address in a From-like value, or None if none, several or unclear."""
    # Quoted display names and (non-nested) comments may hold anything; take them out.
    rest = _QUOTED_OR_COMMENT.sub(" ", value)
    if '"' in rest or "(" in rest or ")" in rest:
        return None
    angles = _ANGLE.findall(rest)
    if len(angles) > 1:
        return None
    if angles:
        outside = _ANGLE.sub(" ", rest)
        if any(c in outside for c in "<>@,;:"):
            return None
        address = angles[0].strip()
    else:
        address = rest.strip()
    if not _ADDR.fullmatch(address):
        return None
    return address


def envelope_address(value: str) -> str:
    """The address inside an SMTP path (`<a@b>` -> `a@b`, `<>` -> empty)."""
    value = value.strip()
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1]
    return value.strip()
