"""Three relays that send remote mail through chatmail-mxsend (HTTPS first), for tests/mxsend.

gamma.test (127.0.0.51) and delta.test (127.0.0.52) listen on port 25 of no address: their
MX's port 25 refuses connections, so mail between them can only go over HTTPS (nginx's port
443 of their address, /mxdeliv, the test CA). eps.test (127.0.0.53) listens on port 25 too:
with its nginx stopped, mail to it goes back to Postfix and over SMTP. nsd on 127.53.0.51
serves the three zones as `chatmail-dns` prints them.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from harness import stack_dir
from harness.nameserver import NameServer
from harness.net import free_port
from harness.relay import STANDARD_PORTS, LocalRelay, Ports
from harness.tls import TestCA

NAMESERVER = ("127.53.0.51", 53)
HTTPS_ONLY = {"gamma.test": "127.0.0.51", "delta.test": "127.0.0.52"}
WITH_SMTP = ("eps.test", "127.0.0.53")
SKIP_SECONDS = 6  # [federation] https_skip of the relays: 30 minutes in production


@dataclass
class Relays:
    gamma: LocalRelay
    delta: LocalRelay
    eps: LocalRelay
    ns: NameServer

    @property
    def all(self) -> list[LocalRelay]:
        return [self.gamma, self.delta, self.eps]


def _relay(root: Path, domain: str, address: str, ca: TestCA, smtp: bool) -> LocalRelay:
    relay_root = root / domain
    relay_root.mkdir()
    relay_root.chmod(0o755)
    ports = (
        STANDARD_PORTS if smtp else Ports(**{**vars(STANDARD_PORTS), "smtp": free_port(address)})
    )
    return LocalRelay(
        relay_root,
        domain=domain,
        address=address,
        ports=ports,
        nameserver=NAMESERVER,
        ca=ca,
        web=True,
        web_ports=(free_port(address), 443),
        config_sections={
            "chatmail": {"log_level": "debug"},
            "dkim": {"dns_timeout": 2},
            "federation": {"https_skip": SKIP_SECONDS},
        },
    )


@pytest.fixture(scope="package")
def relays(request: pytest.FixtureRequest) -> Iterator[Relays]:
    root = stack_dir("chatmail-mxsend-")
    ca = TestCA(root / "ca")
    specs = [(d, a, False) for d, a in HTTPS_ONLY.items()] + [(*WITH_SMTP, True)]
    with ThreadPoolExecutor(len(specs)) as pool:
        built = list(pool.map(lambda spec: _relay(root, spec[0], spec[1], ca, spec[2]), specs))
    zones = {relay.domain: relay.zone_text() for relay in built}
    ns = NameServer(root, address=NAMESERVER[0], zones=zones, port=NAMESERVER[1])
    network = Relays(*built, ns)
    failed_before = request.session.testsfailed
    ns.start()
    started: list[LocalRelay] = []
    try:
        with ThreadPoolExecutor(len(built)) as pool:
            futures = [pool.submit(relay.start) for relay in built]
        for relay, future in zip(built, futures, strict=True):
            if future.exception() is None:
                started.append(relay)
        for future in futures:
            future.result()
        yield network
        if request.session.testsfailed > failed_before:
            for relay in built:
                print(f"--- {relay.domain}: our services ---\n" + relay.service_logs()[-20000:])
                print(f"--- {relay.domain}: postfix ---\n" + relay.postfix.log_text()[-20000:])
    finally:
        with ThreadPoolExecutor(max(len(started), 1)) as pool:
            list(pool.map(lambda relay: relay.stop(), started))
        ns.stop()
        shutil.rmtree(root, ignore_errors=True)
