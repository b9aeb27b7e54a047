"""Mail HTTPS could not deliver, handed back to Postfix for SMTP at once.

Postfix's `mxreturn` smtpd (master.cf) listens on a UNIX socket in the queue's `public/`
directory (group postdrop: only root and that group may connect). It runs no milter (the
message was checked and signed when it was first queued) and sends everything it accepts to
Postfix's `smtp` transport. We speak SMTP only to it, never to another server.
"""

from __future__ import annotations

import smtplib
import socket
from collections.abc import Sequence

TIMEOUT = 60.0
RETURNED = "250 2.0.0 Ok: handed to SMTP"
NOT_RETURNED = "451 4.3.0 Cannot hand the message to SMTP now, try again later"


class _UnixSMTP(smtplib.SMTP):
    """smtplib's client on a UNIX socket."""

    def __init__(self, path: str, timeout: float) -> None:
        self._path = path
        super().__init__(timeout=timeout)

    def connect_unix(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)
        code, msg = self.getreply()
        if code != 220:
            raise smtplib.SMTPConnectError(code, msg)


def hand_back(
    path: str,
    mail_from: str,
    rcpts: Sequence[str],
    message: bytes,
    smtputf8: bool = False,
    timeout: float = TIMEOUT,
) -> list[str]:
    """Queue the message for `rcpts` in Postfix for SMTP delivery; one LMTP reply per
    recipient: 250 for those Postfix took, a 4xx for the others (never a 5xx: the mail is
    ours to deliver, and a refusal here is no verdict on it)."""
    options = ["SMTPUTF8"] if smtputf8 else []
    try:
        client = _UnixSMTP(path, timeout)
        client.connect_unix()
        try:
            client.ehlo("chatmail-mxsend")
            code, _ = client.mail(mail_from, options)
            if code // 100 != 2:
                return [NOT_RETURNED] * len(rcpts)
            taken = [client.rcpt(rcpt)[0] // 100 == 2 for rcpt in rcpts]
            if any(taken):
                code, _ = client.data(message)
                if code // 100 != 2:
                    taken = [False] * len(rcpts)
        finally:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                client.close()
    except (smtplib.SMTPException, OSError, ValueError):
        return [NOT_RETURNED] * len(rcpts)
    return [RETURNED if ok else NOT_RETURNED for ok in taken]
