"""From an SMTP reply to the HTTP answer of `POST /mxdeliv`, as the reference relay answers.

Delivered: 200 with the body `250 OK`. Anything else: 400 with the one-line SMTP reply as the
body (only its code tells a temporary failure from a permanent one); over the size limit 413
`552 ...`; a method other than POST 405. The texts of our own answers are here, once.
"""

from __future__ import annotations

from dataclasses import dataclass

from chatmail_services.web.http import Response

DELIVERED = "250 OK"
INVALID_DATA = "500 Invalid DATA"
TOO_LARGE = "552 Message exceeds maximum size"
METHOD_NOT_ALLOWED = "Method Not Allowed"
TEMPORARY = "451 4.3.0 Temporary failure, try again later"
BUSY = "451 4.3.2 Too busy, try again later"
BAD_REQUEST = "500 5.5.2 Malformed request"
TIMEOUT = "451 4.4.2 Request not complete in time"


@dataclass(frozen=True)
class Reply:
    """An SMTP reply: the code and the rest of its (first) line, enhanced code included."""

    code: int
    text: str

    def line(self) -> str:
        """`<code> <text>` on one line of printable ASCII."""
        clean = "".join(c if " " <= c <= "~" else " " for c in self.text).strip()
        return f"{self.code} {clean}" if clean else str(self.code)

    @property
    def delivered(self) -> bool:
        return 200 <= self.code < 300


def text_response(status: int, text: str, headers: dict[str, str] | None = None) -> Response:
    """A plain-text answer: one line, CRLF-less, as the reference sends it."""
    return Response(status, text.encode("ascii"), "text/plain", headers or {})


def refused(line: str) -> Response:
    """400 with an SMTP reply line (a refusal or a temporary failure)."""
    return text_response(400, line)


def answer(reply: Reply) -> Response:
    """The HTTP answer for Postfix's reply to the hand-over."""
    if reply.delivered:
        return text_response(200, DELIVERED)
    if reply.code < 400 or reply.code > 599:  # not a refusal Postfix would give: fail closed
        return refused(TEMPORARY)
    return refused(reply.line())
