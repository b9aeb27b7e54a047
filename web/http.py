"""HTTP/1.x requests as nginx forwards them, and responses: pure parsing and formatting.

Only what `/new` needs: a request line, header fields, a body announced by Content-Length.
A request is refused with an `HttpError` (status and reason) as soon as it breaks a rule or a
limit; nothing is read beyond the limits.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

MAX_HEAD = 8 * 1024  # request line and header fields together, with the blank line
MAX_HEADERS = 64
MAX_BODY = 1024  # the client posts an empty body

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TARGET = re.compile(rb"/[!-~]*")
_VERSION = re.compile(rb"HTTP/(\d)\.(\d)")
_FIELD_VALUE = re.compile(rb"[\t -~\x80-\xff]*")

REASONS = {
    200: "OK",
    302: "Found",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Content Too Large",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}


class HttpError(Exception):
    """A request that is answered with `status` and the JSON `{"reason": reason}`."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None):
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.headers = headers or {}


@dataclass(frozen=True)
class Request:
    """A parsed request head: method, path (without query), version, lower-case header names
    (`headers`: a repeated field's values joined by ", "; `fields`: every field in order)."""

    method: str
    target: str
    version: tuple[int, int]
    headers: dict[str, str] = field(default_factory=dict)
    fields: tuple[tuple[str, str], ...] = ()

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    def content_length(self, limit: int = MAX_BODY) -> int:
        """The body's length (0 without Content-Length); `HttpError` 413 above `limit`."""
        text = self.headers.get("content-length")
        if text is None:
            return 0
        length = int(text)
        if length > limit:
            raise HttpError(413, f"request body larger than {limit} bytes")
        return length


def parse_head(head: bytes, max_head: int = MAX_HEAD, max_headers: int = MAX_HEADERS) -> Request:
    """Parse a request head ending in CRLF CRLF; raise `HttpError` when it is not acceptable
    (longer than `max_head` bytes, more than `max_headers` fields, malformed)."""
    if len(head) > max_head:
        raise HttpError(431, "request header too large")
    if not head.endswith(b"\r\n\r\n"):
        raise HttpError(400, "incomplete request header")
    lines = head[:-4].split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]):
        raise HttpError(400, "malformed request line")
    method, target, version_text = parts
    version = _VERSION.fullmatch(version_text)
    if not version:
        raise HttpError(400, "malformed request line")
    if version[1] != b"1":
        raise HttpError(505, "only HTTP/1.0 and HTTP/1.1")
    if not _TARGET.fullmatch(target):
        raise HttpError(400, "request target must be a path")
    if len(lines) - 1 > max_headers:
        raise HttpError(431, f"more than {max_headers} header fields")
    headers: dict[str, str] = {}
    fields: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):
            raise HttpError(400, "malformed header field")
        value = value.strip(b" \t")
        if not _FIELD_VALUE.fullmatch(value):
            raise HttpError(400, "control character in a header field")
        key = name.decode("ascii").lower()
        text = value.decode("latin-1")
        fields.append((key, text))
        if key == "content-length":
            if not text.isdigit() or not text.isascii() or len(text) > 18:
                raise HttpError(400, "malformed Content-Length")
            if key in headers and headers[key] != text:
                raise HttpError(400, "conflicting Content-Length")
        elif key in headers:
            text = f"{headers[key]}, {text}"
        headers[key] = text
    if "transfer-encoding" in headers:
        raise HttpError(501, "transfer codings are not supported; send Content-Length")
    return Request(
        method.decode("ascii"),
        target.decode("ascii"),
        (1, int(version[2])),
        headers,
        tuple(fields),
    )


@dataclass(frozen=True)
class Response:
    """A response: status, extra header fields, body and its type."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self, head_only: bool = False) -> bytes:
        """The bytes on the wire; one response per connection (`Connection: close`)."""
        lines = [
            f"HTTP/1.1 {self.status} {REASONS.get(self.status, 'Unknown')}",
            f"Content-Type: {self.content_type}",
            f"Content-Length: {len(self.body)}",
            "Cache-Control: no-store",
            "Connection: close",
            *(f"{name}: {value}" for name, value in self.headers.items()),
        ]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head if head_only else head + self.body


def json_response(status: int, data: dict[str, str], headers: dict[str, str] | None = None):
    """A JSON response."""
    body = json.dumps(data, separators=(",", ":")).encode("utf-8")
    return Response(status, body, headers=headers or {})


def error_response(error: HttpError) -> Response:
    """The JSON `{"reason": ...}` the client shows for an error status."""
    return json_response(error.status, {"reason": error.reason}, error.headers)
