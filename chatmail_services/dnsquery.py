"""DNS look-ups through dnspython: the system's resolver or the nameservers the config names.

One place for the resolver set-up and for the meaning of failures, shared by the milter's DKIM
key look-ups and `chatmail-dns --check`: a name that does not exist or has no record of the
type is an empty answer, and so is a name that cannot exist (`parse_name`: a label over 63
octets, an empty label, over 255 octets in all), which is never asked; anything else that
goes wrong (timeout, SERVFAIL, no server reachable) raises `DnsTemporaryError`, which callers
turn into a temporary failure, never an accept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver


class DnsTemporaryError(Exception):
    """The answer could not be had now; asking again later may succeed."""


class BadName(ValueError):
    """Text that is no DNS name (RFC 1035 2.3.4 limits): no such name can exist."""


_WHY = {
    dns.name.EmptyLabel: "an empty label",
    dns.name.LabelTooLong: "a label longer than 63 octets",
    dns.name.NameTooLong: "longer than 255 octets",
}


def parse_name(text: str) -> dns.name.Name:
    """`text` as an absolute DNS name; `BadName` says why it cannot be one."""
    try:
        return dns.name.from_text(text)
    except (dns.exception.DNSException, ValueError) as exc:  # also bad escapes, IDNA errors
        why = _WHY.get(type(exc), type(exc).__name__)
        raise BadName(f"not a DNS name: {why}") from None


@dataclass(frozen=True)
class Answer:
    """The records of one name and type (texts in zone-file presentation) and their TTL."""

    records: tuple[str, ...]
    ttl: int


SYSTEM_RESOLV_CONF = "/etc/resolv.conf"


def make_resolver(
    nameservers: Sequence[tuple[str, int]],
    timeout: float,
    resolv_conf: str = SYSTEM_RESOLV_CONF,
) -> dns.resolver.Resolver:
    """A resolver asking `nameservers` ((ip, port) pairs), or the system's when empty.

    `timeout` bounds one whole look-up (all servers and retries together). Without a usable
    `resolv_conf` (and no `nameservers`) the resolver has no server: every look-up then raises
    `DnsTemporaryError`, so the caller answers 4xx instead of failing to start.
    """
    if nameservers:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [host for host, _ in nameservers]
        ports = {port for _, port in nameservers}
        if len(ports) == 1:
            resolver.port = ports.pop()
        else:
            resolver.nameserver_ports = dict(nameservers)
    else:
        try:
            resolver = dns.resolver.Resolver(filename=resolv_conf, configure=True)
        except dns.resolver.NoResolverConfiguration:
            resolver = dns.resolver.Resolver(configure=False)
    resolver.lifetime = timeout
    resolver.timeout = min(timeout, 2.0)
    resolver.cache = None
    return resolver


def query(resolver: dns.resolver.Resolver, name: str, rdtype: str) -> Answer:
    """All records of `rdtype` at `name`; empty if the name or the type does not exist."""
    try:
        answer = resolver.resolve(parse_name(name), rdtype, search=False)
    except (BadName, dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return Answer((), 0)
    except (dns.exception.Timeout, dns.resolver.NoNameservers, dns.resolver.LifetimeTimeout) as exc:
        raise DnsTemporaryError(f"DNS look-up of {rdtype} failed: {type(exc).__name__}") from None
    except dns.exception.DNSException as exc:
        raise DnsTemporaryError(f"DNS look-up of {rdtype} failed: {type(exc).__name__}") from None
    assert answer.rrset is not None
    return Answer(tuple(rdata.to_text() for rdata in answer.rrset), answer.rrset.ttl)


def txt_strings(resolver: dns.resolver.Resolver, name: str) -> tuple[tuple[bytes, ...], int]:
    """The TXT records at `name`, each as its character-strings joined, and the TTL."""
    try:
        answer = resolver.resolve(parse_name(name), dns.rdatatype.TXT, search=False)
    except (BadName, dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return (), 0
    except dns.exception.DNSException as exc:
        raise DnsTemporaryError(f"DNS look-up of TXT failed: {type(exc).__name__}") from None
    assert answer.rrset is not None
    return tuple(b"".join(rdata.strings) for rdata in answer.rrset), answer.rrset.ttl
