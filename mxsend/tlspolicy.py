"""How HTTPS to a domain is verified, from Postfix's TLS policy table (`tls_policy`).

The table (`smtp_tls_policy_maps`, texthash) lists exceptions to verified TLS: a destination
(a domain, `.domain` for its subdomains) and a level. HTTPS follows it as SMTP does:

- no entry, `verify`, `secure`: the certificate chain and the host name are verified;
- `encrypt`, `may`, `dane`: TLS without certificate verification (`may` still never sends in
  the clear: HTTPS has no cleartext);
- `none`, `fingerprint`, `dane-only` or a level we do not know: no HTTPS at all, the mail goes
  over SMTP where Postfix applies the policy itself (fail closed).

Pure apart from `load_policy`, which reads the file.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path


class Tls(Enum):
    VERIFY = "verify"
    UNVERIFIED = "unverified"
    NO_HTTPS = "no-https"


_LEVELS = {
    "verify": Tls.VERIFY,
    "secure": Tls.VERIFY,
    "encrypt": Tls.UNVERIFIED,
    "may": Tls.UNVERIFIED,
    "dane": Tls.UNVERIFIED,
}


def parse_policy(text: str) -> dict[str, str]:
    """{destination (lower case): level} from the table's lines; comments and blank lines
    skipped, a line without a level counts as `none`."""
    table: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        destination, *rest = line.split()
        table[destination.lower()] = rest[0].lower() if rest else "none"
    return table


def tls_for(table: dict[str, str], domain: str) -> Tls:
    """The HTTPS verification for mail to `domain`: its own entry, else the closest
    `.parent` entry, else verified."""
    domain = domain.lower().rstrip(".")
    level = table.get(domain) or table.get(f"[{domain}]")
    labels = domain.split(".")
    for i in range(1, len(labels)):
        if level is not None:
            break
        level = table.get("." + ".".join(labels[i:]))
    if level is None:
        return Tls.VERIFY
    return _LEVELS.get(level.partition(":")[0], Tls.NO_HTTPS)


def load_policy(path: str) -> dict[str, str]:
    """The table of the file at `path`; a missing file is an empty table (all verified)."""
    try:
        return parse_policy(Path(path).read_text(errors="replace"))
    except FileNotFoundError:
        return {}
