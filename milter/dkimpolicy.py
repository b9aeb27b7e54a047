"""The DKIM policy of incoming mail: which signatures count, and the verdict. No I/O.

A message passes when one DKIM-Signature whose `d=` is exactly the From domain (strict
alignment, case-insensitive) and whose `h=` names From verifies. Signatures with an `l=` tag
are never used (content appended after signing would pass as signed), nor those that do not
sign From (RFC 6376 6.1.1: they say nothing about it). A From address literal needs no
signature but must be the connecting client's own address. The check of one signature is an
input (`check(index)`, index among all DKIM-Signature fields, top first); see
milter/dkimverify.py.
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
LITERAL_MISMATCH = ("554", "5.7.1", "From address literal is not the sending server's address")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


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
    signs_from: bool  # h= names the From field


_H_SEPARATOR = re.compile(r"[ \t\r\n]*:[ \t\r\n]*")


def signed_fields(h: str) -> list[str]:
    """The field names of an `h=` value, lower-cased (colon-separated, FWS around colons)."""
    return [name.lower() for name in _H_SEPARATOR.split(h.strip(_FWS))]


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
            signs_from = "from" in signed_fields(tags.get("h", ""))
            parsed.append(Signature(index, tags["d"].lower(), "l" in tags, signs_from))
    return len(values), parsed


_LITERAL = re.compile(r"\[(?:IPv6:([0-9A-Fa-f:.]+)|([0-9.]+))\]")
_LITERAL_ADDR = re.compile(r'(?:"(?:[^"\\]|\\.)*"\s*|[^"<>@\[\]]*)<([^<>@\s]+@\[[^\[\]\s]+\])>\s*')
_LITERAL_BARE = re.compile(r"([^<>@\s\"]+@\[[^\[\]\s]+\])\s*")


def literal_address(domain: str) -> IPAddress | None:
    """The IP address of an address literal (`[192.0.2.1]`, `[IPv6:2001:db8::1]`), or None."""
    match = _LITERAL.fullmatch(domain)
    if not match:
        return None
    try:
        address = ipaddress.ip_address(match.group(1) or match.group(2))
    except ValueError:
        return None
    if match.group(1) is not None and ":" not in match.group(1):
        return None  # [IPv6:192.0.2.1] is no IPv6 address
    return address


def same_host(a: IPAddress, b: IPAddress) -> bool:
    """Whether two addresses name the same host (an IPv4-mapped IPv6 address is its IPv4)."""

    def plain(ip: IPAddress) -> IPAddress:
        mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
        return mapped or ip

    return plain(a) == plain(b)


@dataclass(frozen=True)
class FromDomain:
    """The domain of the single From address (lower-cased), or why there is none; for an
    address literal, the literal as written and its IP address."""

    domain: str | None
    literal: bool = False
    address: IPAddress | None = None


def _literal(domain: str) -> FromDomain:
    address = literal_address(domain)
    return FromDomain(None) if address is None else FromDomain(domain, True, address)


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
        return _literal(domain)
    value = values[0].strip()
    match = _LITERAL_ADDR.fullmatch(value) or _LITERAL_BARE.fullmatch(value)
    if match:
        return _literal(match.group(1).rpartition("@")[2])
    return FromDomain(None)


def select(signatures: Sequence[Signature], domain: str, max_signatures: int) -> list[int]:
    """Indices of the signatures worth checking: aligned, signing From, no l=, at most
    `max_signatures`."""
    chosen = [
        s.index
        for s in signatures
        if s.domain == domain.lower() and s.signs_from and not s.has_length
    ]
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


def literal_verdict(sender: FromDomain, client: IPAddress | None) -> Verdict:
    """An address literal in From stands for the server that sends: it must be the client."""
    assert sender.address is not None
    if client is not None and same_host(sender.address, client):
        return accept("From is the sending server's address literal: DKIM not required")
    return refuse(LITERAL_MISMATCH, "From address literal differs from the client address")


def decide(
    headers: mime.Headers,
    check: Callable[[int], Check],
    max_signatures: int,
    client: IPAddress | None = None,
) -> Verdict:
    """The DKIM verdict for an incoming message; `check` is asked in order until one is valid.
    `client` is the connecting client's address (None when unknown: a From literal fails)."""
    sender = from_domain(headers)
    if sender.literal:
        return literal_verdict(sender, client)
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
