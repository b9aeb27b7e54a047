"""The federation test network: two relays, a classic server, nsd; names and helpers.

alpha.test on 127.0.0.2 and beta.test on 127.0.0.3 are complete relays (Postfix, Dovecot, our
services) on the standard ports, with certificates from one test CA that both trust for
verified outgoing TLS, their own DKIM keys, and nsd on 127.53.0.9:53 serving their zones as
`chatmail-dns` prints them. Each relay's Postfix resolves MX and A records through that nsd
(in its own mount namespace), its milter looks DKIM keys up there. outside.test on 127.0.0.4 is
a plain Postfix (not our templates) that forwards mail to the relays by a transport map; its
DKIM key, and the one of late.test, is published in the same nsd, and the tests sign with it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from chatmail_services.dnszone.records import Record
from chatmail_services.dnszone.zonefile import render_zone

from chatmail_services import dkimkey

from .messages import imap_login
from .nameserver import NameServer
from .outside import OutsidePostfix
from .relay import LocalRelay
from .tls import TestCA

NAMESERVER = ("127.53.0.9", 53)  # not nameserver.py's default: its own tests may run meanwhile
RELAYS = {"alpha.test": "127.0.0.2", "beta.test": "127.0.0.3"}
OUTSIDE = ("outside.test", "127.0.0.4")
LATE = "late.test"  # a signing domain first looked up while DNS is down (no cached key)
OUTSIDE_SELECTOR = "mail"


@dataclass
class Federation:
    ns: NameServer
    alpha: LocalRelay
    beta: LocalRelay
    outside: OutsidePostfix
    outside_key: bytes  # PEM, for d=outside.test and d=late.test
    outside_public: str  # its p= value

    @property
    def relays(self) -> list[LocalRelay]:
        return [self.alpha, self.beta]

    def key_records(self) -> dict[str, str]:
        """Every published DKIM key: {"<selector>._domainkey.<domain>.": TXT value}."""
        records = dict(relay.dkim_record() for relay in self.relays)
        public = dkimkey.dkim_record_value(self.outside_public)
        for domain in (OUTSIDE[0], LATE):
            records[f"{OUTSIDE_SELECTOR}._domainkey.{domain}."] = public
        return records


def outside_zone(domain: str, address: str | None, public_b64: str) -> str:
    """A classic domain's records (A, MX if it has a server; its DKIM key), as zone text."""
    name = f"{domain}."
    records = []
    if address:
        records += [
            Record(name, "A", address, True),
            Record(name, "MX", f"10 {name}", True),
        ]
    records.append(
        Record(
            f"{OUTSIDE_SELECTOR}._domainkey.{name}",
            "TXT",
            dkimkey.dkim_record_value(public_b64),
            True,
        )
    )
    return render_zone(records, f"{domain} (a classic mail domain, test)")


def observer_of(domain: str) -> str:
    """The account every message of a relay is copied to (always_bcc); no client reads it."""
    return f"observer0@{domain}"


def observer(relay: LocalRelay) -> str:
    return observer_of(relay.domain)


def new_account(relay: LocalRelay) -> dict[str, str]:
    """Fresh credentials, logged in once over IMAP (which creates the account)."""
    credentials = relay.new_credentials()
    imap_login(
        relay.address, relay.dovecot.imaps_port, credentials["email"], credentials["password"]
    )
    return credentials


def home(relay: LocalRelay, addr: str) -> Path:
    return Path(relay.config.chatmail.mailboxes_dir) / addr


def _relay(root: Path, domain: str, address: str, ca: TestCA) -> LocalRelay:
    relay_root = root / domain
    relay_root.mkdir()
    relay_root.chmod(0o755)
    return LocalRelay(
        relay_root,
        domain=domain,
        address=address,
        nameserver=NAMESERVER,
        ca=ca,
        config_sections={"chatmail": {"log_level": "debug"}, "dkim": {"dns_timeout": 2}},
        postfix_settings={"always_bcc": observer_of(domain)},
    )


def build(root: Path) -> Federation:
    """Configure every part under root (nothing started yet; `postfix check` takes seconds
    per instance, so the servers are configured side by side)."""
    ca = TestCA(root / "ca")
    routes = {domain: f"{address}:25" for domain, address in RELAYS.items()}
    with ThreadPoolExecutor(len(RELAYS) + 1) as pool:
        outside_future = pool.submit(
            OutsidePostfix, root, routes, domain=OUTSIDE[0], address=OUTSIDE[1]
        )
        futures = {d: pool.submit(_relay, root, d, a, ca) for d, a in RELAYS.items()}
        relays = {domain: future.result() for domain, future in futures.items()}
        outside = outside_future.result()
    key_path = root / "outside.private"
    dkimkey.generate_key(key_path)
    public = dkimkey.public_key_b64(key_path)
    zones = {domain: relay.zone_text() for domain, relay in relays.items()}
    zones[OUTSIDE[0]] = outside_zone(OUTSIDE[0], OUTSIDE[1], public)
    zones[LATE] = outside_zone(LATE, None, public)
    ns = NameServer(root, address=NAMESERVER[0], zones=zones, port=NAMESERVER[1])
    return Federation(
        ns, relays["alpha.test"], relays["beta.test"], outside, key_path.read_bytes(), public
    )


def start(network: Federation) -> list:
    """Start every part (DNS first) and create the observer accounts; the started parts."""
    started: list = []
    try:
        network.ns.start()
        started.append(network.ns)
        servers = [*network.relays, network.outside]
        with ThreadPoolExecutor(len(servers)) as pool:
            futures = [pool.submit(server.start) for server in servers]
        for server, future in zip(servers, futures, strict=True):
            if future.exception() is None:
                started.append(server)
        for future in futures:
            future.result()  # the first failure, after the others were recorded for stopping
        for relay in network.relays:
            credentials = relay.new_credentials()
            imap_login(
                relay.address, relay.dovecot.imaps_port, observer(relay), credentials["password"]
            )
    except BaseException:
        stop(started)
        raise
    return started


def stop(parts: list) -> None:
    """Stop the servers at the same time (each takes seconds), the nameserver last."""
    servers = [part for part in parts if not isinstance(part, NameServer)]
    with ThreadPoolExecutor(max(len(servers), 1)) as pool:
        list(pool.map(lambda part: part.stop(), servers))
    for part in parts:
        if isinstance(part, NameServer):
            part.stop()
