"""A whole relay on loopback and real Delta Chat accounts on it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from deltachat_rpc_client import DeltaChat
from harness import stack_dir
from harness.deltachat import deltachat_core
from harness.relay import LocalRelay

DOMAIN = "chat.localhost"
TURN_SECRET = "e2e-turn-secret"
TURN_HOST = "127.0.0.1"  # the core resolves a name and drops what does not resolve


@pytest.fixture(scope="package")
def observer_address() -> str:
    """An account no client reads; Postfix copies every message to it (always_bcc)."""
    return f"observer0@{DOMAIN}"


@pytest.fixture(scope="package")
def relay(request: pytest.FixtureRequest, observer_address: str) -> Iterator[LocalRelay]:
    """The relay the whole e2e package shares (services log at debug level)."""
    root = stack_dir("chatmail-e2e-")
    secret = root / "turn-secret"
    secret.write_text(TURN_SECRET + "\n")
    secret.chmod(0o644)
    relay = LocalRelay(
        root,
        domain=DOMAIN,
        config_sections={
            "chatmail": {"log_level": "debug"},
            # No DKIM key look-up may leave the machine: a loopback port where nothing answers
            # (a look-up would fail as a 4xx). These tests send no signed mail to port 25.
            "dkim": {"resolver": "127.0.0.1:9", "dns_timeout": 1},
            "metadata": {"turn_host": TURN_HOST, "turn_secret_file": secret},
        },
        postfix_settings={"always_bcc": observer_address},
    )
    failed_before = request.session.testsfailed
    with relay:
        yield relay
        if request.session.testsfailed > failed_before:
            # Show what the daemons said; pytest prints it with the failure report.
            print("--- our services ---\n" + relay.service_logs()[-20000:])
            print("--- dovecot ---\n" + relay.dovecot.log_text()[-20000:])
            print("--- postfix ---\n" + relay.postfix.log_text()[-20000:])
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="package")
def deltachat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeltaChat]:
    """The real Delta Chat core (deltachat-rpc-server from PyPI)."""
    with deltachat_core(tmp_path_factory.mktemp("deltachat") / "accounts") as core:
        yield core
