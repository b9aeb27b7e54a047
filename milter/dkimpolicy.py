"""The DKIM policy of incoming mail: which signatures count, and the verdict. No I/O.

A message passes when one DKIM-Signature whose `d=` is exactly the From domain (strict
alignment, case-insensitive) verifies. Signatures with an `l=` tag are never used (content
appended after signing would pass as signed). The check of one signature is an input
(`check(index)`, index among all DKIM-Signature fields, top first); see milter/dkimverify.py.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from . import mime
from .policy import Verdict, accept, refuse

NO_SIGNATURE = ("554", "5.7.1", "No DKIM signature found")
NO_VALID_SIGNATURE = ("554", "5.7.1", "No valid DKIM signature found")
# RFC 7372: 4.7.5 "cryptographic failure"; here the key could not be fetched (yet).
KEY_UNAVAILABLE = ("451", "4.7.5", "DKIM key lookup failed, please try again later")


class TagListError(ValueError):
    """A DKIM tag list (RFC 6376 section 3.2) that does not parse."""


class Check(Enum):
    """The outcome of verifying one signature."""

    VALID = "valid"
    INVALID = "invalid"
    TEMPFAIL = "tempfail"  # the key could not be fetched now (DNS failure, timeout)


_TAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_TAG_VALUE = re.compile(r"(?:[!-:<-~]+(?:(?:[ \t]|\r\n[ \t])+[!-:<-~]+)*)?")
_FWS = " \t\r\n"


def parse_tag_list(value: str) -> dict[str, str]:
    """`tag=value; ...` as a dict (tag names case-sensitive, values with folding kept).

    Raises TagListError on a missing `=`, a bad tag name, a character outside VALCHAR, a
    duplicate tag or an empty tag-spec (other than one trailing `;`).
    """
    specs = value.split(";")
    if specs[-1].strip(_FWS) == "" and len(specs) > 1:
        specs.pop()
    tags: dict[str, str] = {}
    for spec in specs:
        name, sep, raw = spec.partition("=")
        name, raw = name.strip(_FWS), raw.strip(_FWS)
        if not sep:
            raise TagListError(f"tag-spec without '=': {spec.strip(_FWS)[:20]!r}")
        if not _TAG_NAME.fullmatch(name):
            raise TagListError(f"bad tag name {name[:20]!r}")
        if not _TAG_VALUE.fullmatch(raw):
            raise TagListError(f"bad characters in the value of {name}=")
        if name in tags:
            raise TagListError(f"duplicate tag {name}=")
        tags[name] = raw
    return tags


@dataclass(frozen=True)
class Signature:
    """What the selection needs of one DKIM-Signature field."""

    index: int  # among all DKIM-Signature fields of the message, top first
    domain: str  # d=, lower-cased
    has_length: bool  # l= present


def parse_signatures(headers: mime.Headers) -> tuple[int, list[Signature]]:
    """(number of DKIM-Signature fields, the well-formed ones with d= and s=)."""
    values = mime.header_values(headers, "dkim-signature")
    parsed = []
    for index, value in enumerate(values):
        try:
            tags = parse_tag_list(value)
        except TagListError:
            continue
        if tags.get("d") and tags.get("s"):
            parsed.append(Signature(index, tags["d"].lower(), "l" in tags))
    return len(values), parsed


_LITERAL = re.compile(r"\[(?:IPv6:([0-9A-Fa-f:.]+)|([0-9.]+))\]")
_LITERAL_ADDR = re.compile(r'(?:"(?:[^"\\]|\\.)*"\s*|[^"<>@\[\]]*)<([^<>@\s]+@\[[^\[\]\s]+\])>\s*')
_LITERAL_BARE = re.compile(r"([^<>@\s\"]+@\[[^\[\]\s]+\])\s*")


def _is_ip_literal(domain: str) -> bool:
    match = _LITERAL.fullmatch(domain)
    if not match:
        return False
    try:
        ipaddress.ip_address(match.group(1) or match.group(2))
    except ValueError:
        return False
    return (match.group(1) is None) or ":" in match.group(1)


@dataclass(frozen=True)
class FromDomain:
    """The domain of the single From address (lower-cased), or why there is none."""

    domain: str | None
    literal: bool = False


def from_domain(headers: mime.Headers) -> FromDomain:
    """The single From header's domain; `literal` for an address literal `user@[192.0.2.1]`."""
    values = mime.header_values(headers, "from")
    if len(values) != 1:
        return FromDomain(None)
    address = mime.single_address(values[0])
    if address is not None:
        domain = address.rpartition("@")[2]
        if not domain.startswith("["):
            return FromDomain(domain.lower())
        return FromDomain(domain, literal=True) if _is_ip_literal(domain) else FromDomain(None)
    value = values[0].strip()
    match = _LITERAL_ADDR.fullmatch(value) or _LITERAL_BARE.fullmatch(value)
    if match and _is_ip_literal(match.group(1).rpartition("@")[2]):
        return FromDomain(match.group(1).rpartition("@")[2], literal=True)
    return FromDomain(None)


def select(signatures: Sequence[Signature], domain: str, max_signatures: int) -> list[int]:
    """Indices of the signatures worth checking: aligned, no l=, at most `max_signatures`."""
    chosen = [s.index for s in signatures if s.domain == domain.lower() and not s.has_length]
    return chosen[:max_signatures]


def verdict(total: int, results: Sequence[Check]) -> Verdict:
    """The verdict from the number of DKIM-Signature fields and the selected ones' results."""
    if Check.VALID in results:
        return accept("valid aligned DKIM signature")
    if total == 0:
        return refuse(NO_SIGNATURE, "no DKIM signature")
    if Check.TEMPFAIL in results:
        return refuse(KEY_UNAVAILABLE, "DKIM key lookup failed")
    if not results:
        return refuse(NO_VALID_SIGNATURE, f"{total} DKIM signatures, none usable and aligned")
    return refuse(NO_VALID_SIGNATURE, f"{len(results)} aligned DKIM signatures, none valid")


def decide(headers: mime.Headers, check: Callable[[int], Check], max_signatures: int) -> Verdict:
    """The DKIM verdict for an incoming message; `check` is asked in order until one is valid."""
    sender = from_domain(headers)
    if sender.literal:
        return accept("From is an address literal: DKIM not required")
    total, signatures = parse_signatures(headers)
    if sender.domain is None:
        if total == 0:
            return refuse(NO_SIGNATURE, "no DKIM signature")
        return refuse(NO_VALID_SIGNATURE, "no single From address to align with")
    results: list[Check] = []
    for index in select(signatures, sender.domain, max_signatures):
        results.append(check(index))
        if results[-1] is Check.VALID:
            break
    return verdict(total, results)
