"""The server keys a client reads with `GETMETADATA ""`, from the configuration.

`maxsmtprecipients` (the number Postfix uses as `smtpd_recipient_limit`), `irohrelay` and
`turn` (TURN REST credentials over the secret shared with coturn); `appversions` is in
`appversions.py`. Unset means absent (dict `N`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from dataclasses import dataclass
from pathlib import Path

from chatmail_services.config import Config, SettingsError

log = logging.getLogger("chatmail.metadata")


@dataclass(frozen=True)
class Turn:
    host: str
    port: int
    secret: bytes
    lifetime: int


def turn_credentials(turn: Turn, now: float) -> str:
    """`host:port:expiry:password`: user name = expiry (Unix time), password =
    base64(HMAC-SHA1(secret, user name)), coturn's `use-auth-secret` scheme."""
    username = str(int(now) + turn.lifetime)
    digest = hmac.new(turn.secret, username.encode("ascii"), hashlib.sha1).digest()
    password = base64.b64encode(digest).decode("ascii")
    return f"{turn.host}:{turn.port}:{username}:{password}"


def load_turn(config: Config) -> Turn | None:
    """The TURN settings, with the secret read now; None when no TURN host is configured."""
    section = config.metadata
    if not section.turn_host:
        return None
    try:
        secret = Path(section.turn_secret_file).read_bytes().strip()
    except OSError as exc:
        raise SettingsError(
            f"[metadata] turn_secret_file: cannot read {section.turn_secret_file}: {exc.strerror}"
        ) from None
    if not secret:
        raise SettingsError(f"[metadata] turn_secret_file: {section.turn_secret_file} is empty")
    return Turn(section.turn_host, section.turn_port, secret, section.turn_credential_lifetime)
