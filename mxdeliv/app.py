"""What `POST /mxdeliv` answers: the checks of the request in order, then the hand-over.

Pure apart from the `deliver` callable it is given (handoff.hand_over in the service): a
method other than POST is 405, a body over the size limit 413, a body that is not SMTP DATA
`500 Invalid DATA`, an envelope that does not parse its `501 ...`; then Postfix decides, and
its reply becomes the answer (replies.answer). Addresses are logged at debug level only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from chatmail_services.web.http import Request, Response

from chatmail_services.config import Config
from chatmail_services.mailconfig import MXDELIV_SMTPD_HOST

from .data import InvalidData, unstuff
from .envelope import BadEnvelope, Envelope, parse_envelope
from .replies import (
    INVALID_DATA,
    METHOD_NOT_ALLOWED,
    TOO_LARGE,
    Reply,
    answer,
    refused,
    text_response,
)

log = logging.getLogger("chatmail.mxdeliv")

Deliver = Callable[[Envelope, bytes], Reply]

_ADDRESS_LITERAL = re.compile(r"\[[^\]]*\]?")


def loggable(text: object) -> str:
    """Text for the debug log with every `[...]` (an address literal's IP) replaced: no IP
    address is ever logged, not even of a recipient."""
    return _ADDRESS_LITERAL.sub("[address literal]", str(text))


@dataclass(frozen=True)
class Settings:
    """What the service needs of the configuration."""

    max_message_size: int
    smtpd_host: str
    smtpd_port: int


def settings_from_config(config: Config) -> Settings:
    return Settings(
        config.chatmail.max_message_size, MXDELIV_SMTPD_HOST, config.federation.smtpd_port
    )


def too_large() -> Response:
    return text_response(413, TOO_LARGE)


def method_not_allowed() -> Response:
    return text_response(405, METHOD_NOT_ALLOWED, {"Allow": "POST"})


def respond(request: Request, body: bytes, settings: Settings, deliver: Deliver) -> Response:
    """The answer to one request whose whole body has been read."""
    if request.method != "POST":
        return method_not_allowed()
    if len(body) > settings.max_message_size:
        return too_large()
    try:
        message = unstuff(body)
    except InvalidData as exc:
        log.info("refused: invalid DATA (%s)", exc)
        return refused(INVALID_DATA)
    try:
        envelope = parse_envelope(request.fields)
    except BadEnvelope as exc:
        log.info("refused: %s", exc.reply)
        return refused(exc.reply)
    if log.isEnabledFor(logging.DEBUG):
        log.debug("%s, %d bytes", loggable(envelope), len(message))
    reply = deliver(envelope, message)
    if reply.delivered:
        log.info("delivered to %d recipient(s)", len(envelope.rcpts))
    else:  # the reply's text may name an address: only its code at info
        log.info("not delivered: %s", " ".join(reply.line().split(" ", 2)[:2]))
        log.debug("Postfix answered %s", loggable(reply.line()))
    return answer(reply)
