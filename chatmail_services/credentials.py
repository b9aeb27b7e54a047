"""Random credentials for a new account: what `/new` hands out and `chatmail-auth
new-credentials` prints. Nothing is stored; the first login creates the account.

The local part is lower-case letters and digits only (a dot-atom that never starts with '-'
and needs no quoting or escaping anywhere); the password is letters and digits, at least 24.
"""

from __future__ import annotations

import secrets
import string

from .address import account_address

LOCAL_ALPHABET = string.ascii_lowercase + string.digits
PASSWORD_ALPHABET = string.ascii_letters + string.digits
GENERATED_PASSWORD_LENGTH = 24  # about 143 bits; longer when password_min_length says so


def new_local_part(length: int) -> str:
    """`length` random lower-case alphanumerics."""
    return "".join(secrets.choice(LOCAL_ALPHABET) for _ in range(length))


def new_password(min_length: int) -> str:
    """A random password of letters and digits, at least `min_length` and 24 characters."""
    length = max(min_length, GENERATED_PASSWORD_LENGTH)
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(length))


def new_credentials(
    mail_domain: str, username_length: int, password_min_length: int
) -> dict[str, str]:
    """`{"email": ..., "password": ...}` for a new account of `mail_domain`."""
    return {
        "email": account_address(mail_domain, new_local_part(username_length)),
        "password": new_password(password_min_length),
    }
