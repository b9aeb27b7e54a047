"""One relay with its web face (nginx, chatmail-web, chatmail-mxdeliv) on 127.0.0.31, and nsd
on 127.53.0.31 serving the DKIM keys of the sending domains, for the tests of /mxdeliv."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from harness import stack_dir
from harness.federation import outside_zone
from harness.nameserver import NameServer
from harness.relay import LocalRelay, Ports

from chatmail_services import dkimkey

ADDRESS = "127.0.0.31"
NAMESERVER = "127.53.0.31"
DOMAIN = "mx.test"
SENDER = "sender.test"  # the relay on the other side: its key is published in nsd
COLD = "cold.test"  # a signing domain first looked up while DNS is down (no cached key)
MAX_MESSAGE_SIZE = 1_600_000  # above nginx's default limit of 1 MiB


@dataclass
class Network:
    relay: LocalRelay
    ns: NameServer
    key: bytes  # the PEM of SENDER's (and COLD's) DKIM key, selector OUTSIDE_SELECTOR


@pytest.fixture(scope="package")
def network(request: pytest.FixtureRequest) -> Iterator[Network]:
    root = stack_dir("chatmail-mxdeliv-")
    key_path = root / "sender.private"
    dkimkey.generate_key(key_path)
    public = dkimkey.public_key_b64(key_path)
    zones = {domain: outside_zone(domain, None, public) for domain in (SENDER, COLD)}
    ns = NameServer(root, address=NAMESERVER, zones=zones)
    relay_root = Path(root) / "relay"
    relay_root.mkdir()
    relay_root.chmod(0o755)
    relay = LocalRelay(
        relay_root,
        domain=DOMAIN,
        address=ADDRESS,
        ports=Ports(),
        nameserver=ns.resolver,
        web=True,
        config_sections={
            "chatmail": {"log_level": "debug", "max_message_size": MAX_MESSAGE_SIZE},
            "dkim": {"dns_timeout": 2},
        },
    )
    failed_before = request.session.testsfailed
    ns.start()
    try:
        with relay:
            yield Network(relay, ns, key_path.read_bytes())
            if request.session.testsfailed > failed_before:
                print("--- our services ---\n" + relay.service_logs()[-20000:])
                print("--- postfix ---\n" + relay.postfix.log_text()[-20000:])
    finally:
        ns.stop()
        shutil.rmtree(root, ignore_errors=True)
