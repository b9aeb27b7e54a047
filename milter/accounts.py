"""Which recipients are local accounts that refuse cleartext mail (the marker file)."""

from __future__ import annotations

import os
from collections.abc import Callable

from chatmail_services.address import address_domain, is_local_part
from chatmail_services.layout import account_dir, marker_path


def enforcement_lookup(mailboxes_dir: str, mail_domain: str) -> Callable[[str], bool]:
    """Return `enforces(address) -> bool` for recipients of incoming mail.

    Addresses outside the relay's address domain are not local: False (Postfix decides about
    them). A local address that cannot be an account name (chatmail_services.address) fails
    closed: True. A marker that cannot be checked (permissions, I/O) raises OSError, which
    the milter turns into a temporary failure rather than an accept.
    """
    domain = address_domain(mail_domain.lower())

    def enforces(address: str) -> bool:
        local, at, addr_domain = address.lower().rpartition("@")
        if not at or addr_domain != domain:
            return False
        if not is_local_part(local):
            return True
        try:
            os.lstat(marker_path(account_dir(mailboxes_dir, f"{local}@{domain}")))
        except (FileNotFoundError, NotADirectoryError):
            return False
        return True

    return enforces
