"""What an address of this relay is: the one rule for account names (see docs/auth.md).

An account name is `<local part>@<address domain>`. The local part is an RFC 5321 dot-atom of
lower-case ASCII letters, digits, `_` and `-`: atoms joined by single dots, so no leading or
trailing dot and no `..` (other mail servers could not address such a name), and no leading
`-` (admin tools such as `doveadm` would take the name for an option). At most 64 characters.
The address domain is `[chatmail] mail_domain`, or, when that is an IPv4 address (a relay
without a domain name), the address literal `[192.0.2.1]`.

With `@domain` appended, a name can never be "", "." or "..", contain "/" or NUL, so it always
names a direct child of `mailboxes_dir`; and no account name starts with `NON_ACCOUNT_PREFIX`,
which leaves names with that prefix free for other entries there (the reaper's tombstones).
"""

from __future__ import annotations

import functools
import ipaddress
import re

MAX_LOCAL_PART = 64
LOCAL_PART_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789._-"
NON_ACCOUNT_PREFIX = "."

_LOCAL_PART_RE = re.compile(r"[a-z0-9_][a-z0-9_-]*(?:\.[a-z0-9_-]+)*")


def ipv4_domain(mail_domain: str) -> bool:
    """Whether `mail_domain` is an IPv4 address (a relay without a domain name)."""
    try:
        ipaddress.IPv4Address(mail_domain)
    except ValueError:
        return False
    return True


@functools.cache
def address_domain(mail_domain: str) -> str:
    """The domain part of the relay's addresses: the name, or `[ip]` for an IPv4 address."""
    return f"[{mail_domain}]" if ipv4_domain(mail_domain) else mail_domain


def is_local_part(local: str) -> bool:
    """Whether `local` (already lower case) may name an account."""
    return len(local) <= MAX_LOCAL_PART and _LOCAL_PART_RE.fullmatch(local) is not None


def local_part(mail_domain: str, user: str) -> str | None:
    """The local part of `user` if it is an address of `mail_domain` that may name an account.

    Upper-case ASCII is folded (Dovecot already does with `%Lu`); anything non-ASCII, any
    `/`, NUL, control character, or local part that is not a dot-atom of the alphabet above
    is refused, whatever its length. None when refused.
    """
    if not user.isascii():
        return None
    local, at, domain = user.lower().rpartition("@")
    if not at or domain != address_domain(mail_domain) or not is_local_part(local):
        return None
    return local


def account_address(mail_domain: str, local: str) -> str:
    """`local@<address domain>`; the caller must have validated `local`."""
    return f"{local}@{address_domain(mail_domain)}"
