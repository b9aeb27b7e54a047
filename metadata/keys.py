"""The dict keys Dovecot's `mail_attribute_dict` sends, parsed (pure).

A mailbox attribute reaches the dict as `priv/<mailbox GUID>/<key>` (`/private/<key>`) or
`shared/<mailbox GUID>/<key>` (`/shared/<key>`). Server metadata (`GETMETADATA ""`) lives on
INBOX under Dovecot's `vendor/vendor.dovecot/pvt/server/` prefix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEVICE_TOKEN = "devicetoken"
SERVER_PREFIX = "vendor/vendor.dovecot/pvt/server/vendor/deltachat/"
SERVER_KEYS = ("maxsmtprecipients", "irohrelay", "turn", "appversions")
_GUID_RE = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class PrivateKey:
    """`/private/<name>` on the mailbox `guid`."""

    guid: str
    name: str


@dataclass(frozen=True)
class ServerKey:
    """`/shared/vendor/deltachat/<name>` on the server (`GETMETADATA ""`)."""

    name: str


Key = PrivateKey | ServerKey


def parse_key(key: str) -> Key | None:
    """Parse a dict key; None for anything that is not a mailbox attribute of ours."""
    scope, _, rest = key.partition("/")
    guid, sep, name = rest.partition("/")
    if not sep or not name or not _GUID_RE.fullmatch(guid):
        return None
    if scope == "priv":
        return PrivateKey(guid, name)
    if scope == "shared" and name.startswith(SERVER_PREFIX):
        server_name = name[len(SERVER_PREFIX) :]
        return ServerKey(server_name) if server_name in SERVER_KEYS else None
    return None


def is_device_token(key: Key | None) -> bool:
    return isinstance(key, PrivateKey) and key.name == DEVICE_TOKEN
