"""`chatmail-dns --check`: look the expected records up and judge each (see compare)."""

from __future__ import annotations

from collections.abc import Iterable

import dns.resolver

from chatmail_services import dnsquery

from .compare import Finding, compare, temporary_error
from .records import Record


def published(resolver: dns.resolver.Resolver, record: Record) -> tuple[str, ...]:
    """What DNS has at the record's name and type, in the form of `Record.value`.

    Raises `dnsquery.DnsTemporaryError` when the answer cannot be had now.
    """
    if record.rtype == "TXT":
        strings, _ttl = dnsquery.txt_strings(resolver, record.name)
        return tuple(s.decode("utf-8", errors="replace") for s in strings)
    return dnsquery.query(resolver, record.name, record.rtype).records


def check_record(resolver: dns.resolver.Resolver, record: Record) -> Finding:
    try:
        values = published(resolver, record)
    except dnsquery.DnsTemporaryError as exc:
        return temporary_error(record, str(exc))
    return compare(record, values)


def check_zone(resolver: dns.resolver.Resolver, records: Iterable[Record]) -> list[Finding]:
    """One finding per expected record, in the order given."""
    return [check_record(resolver, record) for record in records]
