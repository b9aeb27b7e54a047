"""DKIM verification of incoming mail through dkimpy, with DNS key look-ups and a key cache.

`KeyLookup` is the DNS function dkimpy calls (`name -> TXT record`): it asks the resolver of
`[dkim] resolver`, caches answers (LRU, `key_cache_size` entries, each for min(its TTL,
`key_cache_ttl`)), never caches a failure, and refuses keys above `max_key_bits` (dkimpy then
counts the signature invalid). A DNS failure raises `DnsTemporaryError` through dkimpy (which
only catches its own exceptions), so it becomes a temporary failure, never an accept.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

import dkim
import dns.resolver

from chatmail_services import dnsquery
from chatmail_services.config import DkimSection

from . import dkimcheck, dkimcrypto, dkimpolicy, mime
from .policy import Verdict

log = logging.getLogger("chatmail.milter")
dkimcrypto.install()

OVERSIZED = b"\0oversized"  # cached in place of a key above max_key_bits (no TXT is this)
TxtFetch = Callable[[str], tuple[tuple[bytes, ...], int]]  # name -> (TXT strings, TTL)


class _DebugOnly(logging.LoggerAdapter):
    """dkimpy logs key names and errors at error level: demote all of it to debug."""

    def log(self, level: int, msg: object, *args: object, **kwargs: object) -> None:
        super().log(logging.DEBUG, msg, *args, **kwargs)

    def isEnabledFor(self, level: int) -> bool:
        return self.logger.isEnabledFor(logging.DEBUG)


_DKIMPY_LOG = _DebugOnly(logging.getLogger("chatmail.milter.dkimpy"), {})


class KeyCache:
    """A thread-safe LRU map of key record names to records, each with an expiry time."""

    def __init__(self, size: int, max_ttl: int, clock: Callable[[], float] = time.monotonic):
        self.size, self.max_ttl, self.clock = size, max_ttl, clock
        self._entries: OrderedDict[str, tuple[float, bytes | None]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, name: str) -> tuple[bool, bytes | None]:
        """(found, record); an expired entry is dropped and not found."""
        with self._lock:
            entry = self._entries.get(name)
            if entry is None:
                return False, None
            if entry[0] <= self.clock():
                del self._entries[name]
                return False, None
            self._entries.move_to_end(name)
            return True, entry[1]

    def put(self, name: str, record: bytes | None, ttl: int) -> None:
        keep = min(ttl, self.max_ttl)
        if self.size == 0 or keep <= 0:
            return
        with self._lock:
            self._entries[name] = (self.clock() + keep, record)
            self._entries.move_to_end(name)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class KeyLookup:
    """dkimpy's `dnsfunc`: the key record at `<selector>._domainkey.<domain>`, or None."""

    def __init__(self, fetch: TxtFetch, cache: KeyCache, max_key_bits: int) -> None:
        self.fetch, self.cache, self.max_key_bits = fetch, cache, max_key_bits

    def __call__(self, name: bytes | str, timeout: float = 5) -> bytes | None:
        text = (name.decode("ascii", "replace") if isinstance(name, bytes) else name).lower()
        found, record = self.cache.get(text)
        if not found:
            records, ttl = self.fetch(text)  # DnsTemporaryError propagates: never cached
            record = records[0] if len(records) == 1 else _first_dkim(records)
            if record is not None and self._too_big(text, record):
                record = OVERSIZED  # checked once per fetch, not on every cache hit
            self.cache.put(text, record, ttl)
        if record is OVERSIZED:
            raise dkim.KeyFormatError(f"key larger than max_key_bits {self.max_key_bits}")
        return record

    def _too_big(self, name: str, record: bytes) -> bool:
        try:
            _, bits, _, _ = dkimcheck.parsed_key(name, record)
        except dkim.DKIMException:
            return False  # dkimpy reports the malformed key itself (the signature fails)
        return bits is not None and bits > self.max_key_bits


def _first_dkim(records: tuple[bytes, ...]) -> bytes | None:
    """Of several TXT records, the first that looks like a DKIM key record."""
    for record in records:
        if record.lstrip().startswith(b"v=DKIM1") or b"p=" in record:
            return record
    return None


def dns_fetch(resolver: dns.resolver.Resolver) -> TxtFetch:
    """The TXT fetch through `chatmail_services.dnsquery` (for `KeyLookup`)."""
    return lambda name: dnsquery.txt_strings(resolver, name)


class Verifier:
    """Checks the DKIM signatures of one message and gives the policy's verdict."""

    def __init__(self, lookup: KeyLookup, max_signatures: int) -> None:
        self.lookup, self.max_signatures = lookup, max_signatures

    def verdict(
        self, message: bytes, headers: mime.Headers, client: dkimpolicy.IPAddress | None = None
    ) -> Verdict:
        """`message` is the whole message as received; `headers` its parsed fields; `client`
        the connecting client's address (a From address literal must be it)."""
        parsed: list[dkimcheck.SignedMessage | None] = []  # parsed on the first check only

        def check(index: int) -> dkimpolicy.Check:
            if not parsed:
                try:
                    parsed.append(dkimcheck.SignedMessage(message, _DKIMPY_LOG))
                except dkim.DKIMException:
                    parsed.append(None)
            signed = parsed[0]
            if signed is None:
                return dkimpolicy.Check.INVALID
            try:
                ok = signed.verify(idx=index, dnsfunc=self.lookup)
            except dnsquery.DnsTemporaryError:
                return dkimpolicy.Check.TEMPFAIL
            except dkim.DKIMException as exc:
                log.debug("DKIM signature %d: %s", index, exc)
                return dkimpolicy.Check.INVALID
            return dkimpolicy.Check.VALID if ok else dkimpolicy.Check.INVALID

        return dkimpolicy.decide(headers, check, self.max_signatures, client)


def make_verifier(cfg: DkimSection) -> Verifier:
    """A verifier from the `[dkim]` config section."""
    resolver = dnsquery.make_resolver(cfg.resolver, cfg.dns_timeout)
    if not resolver.nameservers:
        log.warning(
            "no DNS server: %s is missing or names none and [dkim] resolver is empty; "
            "incoming mail is answered 451 until one is configured (then restart)",
            dnsquery.SYSTEM_RESOLV_CONF,
        )
    cache = KeyCache(cfg.key_cache_size, cfg.key_cache_ttl)
    return Verifier(KeyLookup(dns_fetch(resolver), cache, cfg.max_key_bits), cfg.max_signatures)
