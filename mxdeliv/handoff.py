"""The hand-over to Postfix: one SMTP transaction with the loopback smtpd ([federation]
smtpd_port), which checks the message exactly as port 25 does (master.cf, docs/https-federation.md).

Our only SMTP client, and it speaks only to our own Postfix on 127.0.0.1. The first reply that
is not a success ends the transaction: one refused recipient refuses the whole message. Every
failure to talk to Postfix (refused connection, timeout, a dropped connection) is a temporary
failure, never a success.
"""

from __future__ import annotations

import logging
import smtplib

from .envelope import Envelope
from .replies import TEMPORARY, Reply

log = logging.getLogger("chatmail.mxdeliv")

HELO_NAME = "mxdeliv.localhost"


def _reply(code: int, text: bytes | str) -> Reply:
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return Reply(code, raw.splitlines()[0] if raw else "")


def _temporary() -> Reply:
    code, _, text = TEMPORARY.partition(" ")
    return Reply(int(code), text)


def _transaction(smtp: smtplib.SMTP, envelope: Envelope, message: bytes) -> Reply:
    code, text = smtp.ehlo(HELO_NAME)
    if code != 250:
        return _reply(code, text)
    code, text = smtp.mail(envelope.mail_from, [f"SIZE={len(message)}"])
    if code != 250:
        return _reply(code, text)
    for rcpt in envelope.rcpts:
        code, text = smtp.rcpt(rcpt)
        if code not in (250, 251):
            smtp.rset()
            return _reply(code, text)
    try:
        code, text = smtp.data(message)
    except smtplib.SMTPDataError as exc:  # DATA itself refused (no 354)
        return _reply(exc.smtp_code, exc.smtp_error)
    return _reply(code, text)


def hand_over(host: str, port: int, envelope: Envelope, message: bytes, timeout: float) -> Reply:
    """Deliver `message` (un-dot-stuffed, CRLF) to the smtpd at host:port; Postfix's reply."""
    try:
        smtp = smtplib.SMTP(host, port, local_hostname=HELO_NAME, timeout=timeout)
    except (OSError, smtplib.SMTPException) as exc:
        log.warning("cannot connect to Postfix: %s", type(exc).__name__)
        return _temporary()
    try:
        reply = _transaction(smtp, envelope, message)
    except (OSError, smtplib.SMTPException) as exc:
        log.warning("Postfix did not complete the hand-over: %s", type(exc).__name__)
        reply = _temporary()
    try:
        smtp.quit()  # the reply stands whatever QUIT gets
    except (OSError, smtplib.SMTPException):
        pass
    finally:
        smtp.close()
    return reply
