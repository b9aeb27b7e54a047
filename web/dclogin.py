"""The `dclogin:` URL: complete login data for Delta Chat (its QR scheme `dclogin`).

`dclogin:<addr>?p=<password>&v=1&ih=...&ip=...&is=ssl&sh=...&sp=...&ss=ssl[&ic=3]`; `ic=3`
makes the client accept an invalid (self-signed) certificate for IMAP and SMTP.
"""

from __future__ import annotations

import urllib.parse

IC_ACCEPT_INVALID = "3"


def dclogin_url(
    addr: str,
    password: str,
    host: str,
    *,
    accept_invalid_cert: bool,
    imap_port: int,
    smtp_port: int,
) -> str:
    """The login URL for `addr` on `host` (IMAP and SMTP over implicit TLS)."""
    params = {
        "p": password,
        "v": "1",
        "ih": host,
        "ip": str(imap_port),
        "is": "ssl",
        "sh": host,
        "sp": str(smtp_port),
        "ss": "ssl",
    }
    if accept_invalid_cert:
        params["ic"] = IC_ACCEPT_INVALID
    query = urllib.parse.urlencode(params, quote_via=urllib.parse.quote, safe="")
    return f"dclogin:{urllib.parse.quote(addr, safe='@')}?{query}"
