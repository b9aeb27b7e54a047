"""Published records against expected ones, semantically (pure: no DNS here).

Names and MX/CNAME/SRV targets compare case-insensitively, with or without trailing dot;
addresses as addresses; TXT values with their strings joined, tag lists (DKIM, DMARC,
MTA-STS) tag by tag (DKIM's `p=` without whitespace); SPF word by word. Of A, AAAA, MX,
CNAME and each kind of TXT (`v=spf1`, `v=DKIM1`, ...) the expected record must be the only
one published; of CAA and SRV, one matching record among others is enough.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from .records import Record
from .zonefile import quote

OK = "ok"
MISSING = "missing"
DIFFERENT = "different"
ERROR = "error"

_EXCLUSIVE = {"A", "AAAA", "MX", "CNAME", "TXT"}


@dataclass(frozen=True)
class Finding:
    """The verdict on one expected record; `published` holds what DNS has of its kind."""

    record: Record
    status: str
    published: tuple[str, ...] = ()
    detail: str = ""

    @property
    def failed(self) -> bool:
        """A required record is missing or different (the check exits 1)."""
        return self.record.required and self.status in (MISSING, DIFFERENT)

    def line(self) -> str:
        """One line for the admin: status, required/recommended, record, and the values."""
        kind = "required" if self.record.required else "recommended"
        head = f"{self.status:<9} {kind:<11} {self.record.describe()}"
        if self.status == OK:
            return head
        expected = self.show(self.record.value)
        if self.status == MISSING:
            return f"{head}: expected {expected}"
        if self.status == DIFFERENT:
            published = ", ".join(self.show(v) for v in self.published)
            return f"{head}: published {published}; expected {expected}"
        return f"{head}: {self.detail}"

    def show(self, value: str) -> str:
        """A value for the line: TXT in quotes (its strings joined), others as they are."""
        return quote(value.encode("utf-8")) if self.record.rtype == "TXT" else value


def _target(text: str) -> str:
    return text.strip().rstrip(".").lower()


def _tags(text: str, dkim: bool) -> dict[str, str]:
    tags = {}
    for part in text.split(";"):
        name, sep, value = part.partition("=")
        if not sep and not name.strip():
            continue
        value = value.strip()
        if dkim and name.strip() == "p":
            value = "".join(value.split())
        tags[name.strip()] = value
    if dkim:
        tags.setdefault("k", "rsa")
    tags["v"] = tags.get("v", "").lower()
    return tags


def txt_kind(value: str) -> str:
    """What a TXT value is (`v=spf1`, `v=dkim1`, `v=dmarc1`, `v=stsv1`): its first word or tag."""
    head = value.strip().split(";", 1)[0].split(None, 1)
    return "".join(head[0].split()).lower() if head else ""


def normal_form(rtype: str, value: str) -> object:
    """A value comparable with ==; the value itself (stripped) if it cannot be understood."""
    words = value.split()
    try:
        if rtype in ("A", "AAAA"):
            return ipaddress.ip_address(value.strip())
        if rtype == "CNAME":
            return _target(value)
        if rtype == "MX" and len(words) == 2:
            return int(words[0]), _target(words[1])
        if rtype == "SRV" and len(words) == 4:
            return int(words[0]), int(words[1]), int(words[2]), _target(words[3])
        if rtype == "CAA" and len(words) >= 3:
            caa = value.split(None, 2)[2].strip().strip('"')
            return int(words[0]), words[1].lower(), tuple(p.strip() for p in caa.split(";"))
    except ValueError:
        return value.strip()
    if rtype == "TXT":
        kind = txt_kind(value)
        if kind == "v=spf1":
            return tuple(w.lower() for w in words)
        if kind.startswith("v="):
            return _tags(value, dkim=kind == "v=dkim1")
    return value.strip()


def same_kind(record: Record, value: str) -> bool:
    """Whether a published value is of the expected record's kind (TXT: same `v=`; CAA: tag)."""
    if record.rtype == "TXT":
        return txt_kind(value) == txt_kind(record.value)
    if record.rtype == "CAA":
        return value.split()[1:2] == record.value.split()[1:2]
    return True


def compare(record: Record, published: tuple[str, ...]) -> Finding:
    """The verdict on `record`, given all values of its name and type that DNS has."""
    relevant = tuple(v for v in published if same_kind(record, v))
    if not relevant:
        return Finding(record, MISSING)
    expected = normal_form(record.rtype, record.value)
    matches = [v for v in relevant if normal_form(record.rtype, v) == expected]
    if matches and (record.rtype not in _EXCLUSIVE or len(matches) == len(relevant)):
        return Finding(record, OK, relevant)
    return Finding(record, DIFFERENT, relevant)


def temporary_error(record: Record, reason: str) -> Finding:
    """The record could not be looked up now (not known to be missing)."""
    return Finding(record, ERROR, detail=f"temporary DNS error, try again later: {reason}")
