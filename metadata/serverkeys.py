"""The server keys a client reads with `GETMETADATA ""`, from the configuration.

`maxsmtprecipients` (the number Postfix uses as `smtpd_recipient_limit`), `irohrelay`,
`turn` (TURN REST credentials over the secret shared with coturn) and `appversions` (one-line
JSON from a file the admin maintains). Unset means absent (dict `N`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from chatmail_services.config import Config, SettingsError

log = logging.getLogger("chatmail.metadata")

MAX_APP_VERSIONS_BYTES = 64 * 1024


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


def app_versions(path: str) -> str | None:
    """The file's JSON as one line, or None when unset, missing or not JSON (with a warning)."""
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_APP_VERSIONS_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("cannot read app_versions_file: %s", exc.strerror)
        return None
    if len(data) > MAX_APP_VERSIONS_BYTES:
        log.warning("app_versions_file is larger than %d bytes: not served", MAX_APP_VERSIONS_BYTES)
        return None
    try:
        value = json.loads(data)
    except ValueError:
        log.warning("app_versions_file is not valid JSON: not served")
        return None
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True)
