"""One message from Postfix: HTTPS to each recipient domain first, the rest back to SMTP.

Per domain: its best host (the first MX by preference, else the domain), unless skipped, is
tried over HTTPS at each of its addresses; a 2xx delivers the domain's recipients. Any other
outcome (another status, no connection within `wire.CONNECT_TIMEOUT`, a TLS error, no answer
within `wire.TIMEOUT`) is SMTP's turn, as with the reference relay: Postfix then walks the MX
hosts itself. So a classic mail server whose port 443 drops packets costs one connect timeout,
once per `[federation] https_skip`. Whatever HTTPS did not deliver goes back to Postfix for
SMTP at once (`handback`), and the host tried is skipped for HTTPS for `[federation]
https_skip` seconds once Postfix took it.

Returns one LMTP reply per recipient: 250 delivered or handed to SMTP, 550 for a domain that
takes no mail (null MX, no such domain), 451 for a DNS failure or a hand-back that failed:
Postfix then keeps the message and tries again later, nothing is lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dns.resolver

from chatmail_services.dnsquery import DnsTemporaryError

from . import handback, https, wire
from .lmtp import Transaction
from .routing import (
    NoRoute,
    domain_of,
    group_by_domain,
    host_addresses,
    is_address_literal,
    mx_hosts,
)
from .skip import SkipTable
from .tlspolicy import Tls, load_policy, tls_for

DELIVERED = "250 2.0.0 Ok: delivered over HTTPS"
NO_ROUTE = "550 5.1.2 Domain accepts no mail (null MX or no such domain)"
DNS_FAILED = "451 4.4.3 DNS look-up failed, try again later"

log = logging.getLogger("chatmail.mxsend")


@dataclass(frozen=True)
class Settings:
    """What the sender needs of `[federation]` (see chatmail_services/config.py)."""

    https: bool
    return_socket: str
    ca_file: str
    tls_policy: str
    port: int = wire.PORT
    timeout: float = wire.TIMEOUT


@dataclass
class Sender:
    """Delivers messages; the I/O functions are parameters so tests can watch them."""

    settings: Settings
    resolver: dns.resolver.Resolver
    skips: SkipTable
    post: Callable[..., int] | None = None  # https.Poster(ca_file).post by default
    hand_back: Callable[..., list[str]] = handback.hand_back

    def __post_init__(self) -> None:
        if self.post is None:
            self.post = https.Poster(self.settings.ca_file).post

    def deliver(self, transaction: Transaction, message: bytes) -> list[str]:
        """The LMTP replies for the transaction's recipients, in order."""
        rcpts = transaction.rcpts
        replies: dict[str, str] = {}
        returned: list[str] = []
        tried: dict[str, list[str]] = {}
        for domain, group in group_by_domain(rcpts).items():
            reply, hosts = self._https(domain, transaction.mail_from, group, message)
            if reply is None:
                returned += group
                tried[domain] = hosts
            else:
                replies.update((rcpt, reply) for rcpt in group)
        if returned:
            smtputf8 = "SMTPUTF8" in (p.upper() for p in transaction.mail_params)
            answers = self.hand_back(
                self.settings.return_socket, transaction.mail_from, returned, message, smtputf8
            )
            replies.update(zip(returned, answers, strict=True))
            taken = sum(answer.startswith("2") for answer in answers)
            log.info("handed %d of %d recipient(s) to SMTP", taken, len(returned))
            for domain, hosts in tried.items():
                group = [r for r in returned if domain_of(r) == domain]
                if any(replies[rcpt].startswith("2") for rcpt in group):
                    for host in hosts:
                        self.skips.skip(host)
        return [replies[rcpt] for rcpt in rcpts]

    def _https(
        self, domain: str, mail_from: str, rcpts: Sequence[str], message: bytes
    ) -> tuple[str | None, list[str]]:
        """(a final reply for the domain's recipients, or None for SMTP; the hosts tried)."""
        if not self.settings.https or is_address_literal(domain):
            return None, []
        if not all(wire.postable(a) for a in [*rcpts, *([mail_from] if mail_from else [])]):
            return None, []  # an address the HTTPS envelope cannot carry: SMTP has SMTPUTF8
        try:
            tls = tls_for(load_policy(self.settings.tls_policy), domain)
        except OSError:
            return None, []
        if tls is Tls.NO_HTTPS:
            return None, []
        try:
            hosts = mx_hosts(self.resolver, domain)
        except NoRoute:
            log.info("no route for %d recipient(s): null MX or no such domain", len(rcpts))
            return NO_ROUTE, []
        except DnsTemporaryError:
            log.info("MX look-up failed for %d recipient(s): later", len(rcpts))
            return DNS_FAILED, []
        host = hosts[0]  # the best MX only: its failure is SMTP's turn, as with the reference
        if self.skips.skipped(host):
            log.debug("%s: HTTPS skipped (SMTP worked recently)", host)
            return None, []
        headers = wire.request_headers(mail_from, rcpts)
        status = self._post_host(host, headers, wire.request_body(message), tls)
        if status is not None and 200 <= status < 300:
            log.info("delivered to %d recipient(s) over HTTPS", len(rcpts))
            log.debug("delivered to %s over HTTPS at %s", ", ".join(rcpts), host)
            return DELIVERED, [host]
        if status is not None:
            log.info("HTTPS answered %d: SMTP instead", status)
        return None, [host]

    def _post_host(
        self, host: str, headers: list[tuple[str, str]], body: bytes, tls: Tls
    ) -> int | None:
        """The status of the first address of `host` that answers, or None."""
        try:
            addresses = host_addresses(self.resolver, host)
        except DnsTemporaryError:
            return None
        for address in addresses:
            assert self.post is not None
            try:
                return self.post(
                    host,
                    address,
                    headers,
                    body,
                    tls,
                    port=self.settings.port,
                    timeout=self.settings.timeout,
                )
            except https.PostFailed as exc:
                log.info("HTTPS to a host of the domain failed (%s)", exc)
        return None
