"""Where mail for a domain goes: recipients grouped by domain, the domain's MX hosts.

DNS through `chatmail_services.dnsquery` (the milter's resolver code and settings). The hosts
of a domain are its MX hosts in preference order (ties in the order DNS gave them), the
domain itself when it has no MX. A null MX (`MX 0 .`) and a domain that does not exist are
permanent (`NoRoute`); any other DNS failure is `DnsTemporaryError`.
"""

from __future__ import annotations

from collections.abc import Iterable

import dns.exception
import dns.resolver

from chatmail_services.dnsquery import BadName, DnsTemporaryError, parse_name, query


class NoRoute(Exception):
    """Mail for the domain cannot be delivered at all (null MX, no such domain)."""


def domain_of(address: str) -> str:
    """The domain of an address, lower case (the text after the last `@`)."""
    return address.rpartition("@")[2].lower()


def is_address_literal(domain: str) -> bool:
    """`[192.0.2.1]`, `[IPv6:2001:db8::1]`: no name to look up or verify; SMTP's, not ours."""
    return domain.startswith("[")


def group_by_domain(rcpts: Iterable[str]) -> dict[str, list[str]]:
    """The recipients by domain, each domain's in their order, domains in first-seen order."""
    groups: dict[str, list[str]] = {}
    for rcpt in rcpts:
        groups.setdefault(domain_of(rcpt), []).append(rcpt)
    return groups


def order_mx(records: Iterable[str]) -> list[str]:
    """MX records (`<preference> <host>.` texts) as host names by preference; `NoRoute` for a
    null MX. Pure."""
    parsed = []
    for index, record in enumerate(records):
        preference, _, host = record.strip().partition(" ")
        host = host.strip().rstrip(".").lower()
        if not host:
            raise NoRoute("null MX: the domain accepts no mail")
        parsed.append((int(preference), index, host))
    return [host for _, _, host in sorted(parsed)]


def mx_hosts(resolver: dns.resolver.Resolver, domain: str) -> list[str]:
    """The hosts to deliver mail for `domain` to, best first."""
    try:
        answer = resolver.resolve(parse_name(domain), "MX", search=False)
    except (BadName, dns.resolver.NXDOMAIN):
        raise NoRoute("no such domain") from None
    except dns.resolver.NoAnswer:
        return [domain.lower()]
    except dns.exception.DNSException as exc:
        raise DnsTemporaryError(f"DNS look-up of MX failed: {type(exc).__name__}") from None
    assert answer.rrset is not None
    return order_mx(rdata.to_text() for rdata in answer.rrset) or [domain.lower()]


def host_addresses(resolver: dns.resolver.Resolver, host: str) -> list[str]:
    """The IPv4 then IPv6 addresses of a host (empty if it has none)."""
    return [*query(resolver, host, "A").records, *query(resolver, host, "AAAA").records]
