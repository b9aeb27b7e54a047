"""The on-disk account layout that the services share.

An account is one directory `<mailboxes_dir>/<address>`: the Maildir home Dovecot uses. The
auth responder creates it with a `password` file (the hash) and the incoming-encryption
marker; the milter reads the marker; the reaper reads the last-login time; chatmail-metadata
keeps the push device tokens in `devicetokens`, so removing the home removes them too. The last
successful IMAP login is recorded as the password file's mtime, at day granularity (the
same convention as chatmaild), so no further file or database is needed. Which names are
addresses (account names) is the one rule in `chatmail_services/address.py`.
"""

from __future__ import annotations

import os
from pathlib import Path

PASSWORD_FILE = "password"
ENFORCE_E2EE_MARKER = "enforceE2EEincoming"
DEVICE_TOKENS_FILE = "devicetokens"
DAY = 86400  # seconds
HOUR = 3600


def account_dir(mailboxes_dir: str | os.PathLike[str], address: str) -> Path:
    """The home directory of `address`; the caller must have validated the address."""
    return Path(mailboxes_dir) / address


def password_path(home: Path) -> Path:
    return home / PASSWORD_FILE


def marker_path(home: Path) -> Path:
    return home / ENFORCE_E2EE_MARKER


def day_start(timestamp: float) -> int:
    """The UTC midnight at or before `timestamp`: last-login granularity."""
    return int(timestamp) // DAY * DAY


def read_last_login(home: Path) -> int | None:
    """The recorded last-login day (UTC seconds), or None if the account has no password file."""
    try:
        return int(password_path(home).stat(follow_symlinks=False).st_mtime)
    except FileNotFoundError:
        return None


def device_tokens_path(home: Path) -> Path:
    return home / DEVICE_TOKENS_FILE
