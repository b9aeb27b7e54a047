"""The request a sender posts to `https://<host>/mxdeliv`, as the reference relay posts it.

Pure, no I/O. One `X-Mail-To` per recipient, `X-Mail-From` left out for the null sender, the
body as SMTP DATA: CRLF line ends, dot-stuffed, ending in CRLF, without the final `.CRLF`. The
receiving side's parser (`mxdeliv.data.unstuff`) is the inverse.
"""

from __future__ import annotations

from collections.abc import Sequence

from chatmail_services.mxdeliv.data import CRLF, stuff
from chatmail_services.mxdeliv.envelope import MAIL_FROM, MAIL_TO

PATH = "/mxdeliv"
PORT = 443
TIMEOUT = 60.0  # seconds until the answer's header has arrived
CONNECT_TIMEOUT = 10.0  # seconds for the TCP connection (a port 443 that drops packets)
# the field names in lower case, as the reference sends them (HTTP does not care)
HEADER_FROM = MAIL_FROM
HEADER_TO = MAIL_TO


def request_headers(mail_from: str, rcpts: Sequence[str]) -> list[tuple[str, str]]:
    """The envelope as header fields: `X-Mail-From` unless the sender is null, then one
    `X-Mail-To` per recipient, in order."""
    if not rcpts:
        raise ValueError("no recipients")
    fields = [(HEADER_FROM, mail_from)] if mail_from else []
    return fields + [(HEADER_TO, rcpt) for rcpt in rcpts]


def request_body(message: bytes) -> bytes:
    """The DATA body of a message whose lines end in CRLF: dot-stuffed, ending in CRLF (one is
    added when the last line has none)."""
    if message and not message.endswith(CRLF):
        message += CRLF
    return stuff(message)


def postable(address: str) -> bool:
    """An address the HTTPS envelope can carry: printable ASCII without space or `<>`."""
    return bool(address) and all("!" <= c <= "~" and c not in "<>" for c in address)
