"""Calls: coturn (configured from the templatescoturn/) accepts the TURN credentials that
chatmail-metadata hands out over IMAP, and refuses wrong or expired ones."""

from __future__ import annotations

import base64
import hashlib
import hmac
import shutil
import time
from collections.abc import Iterator

import pytest
from harness import stack_dir
from harness.coturn import Coturn
from harness.imap import Imap
from harness.net import free_port
from harness.relay import LocalRelay
from harness.turnclient import allocate

pytestmark = pytest.mark.stack

DOMAIN = "chat.localhost"
SECRET = "turn-test-shared-secret"


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[LocalRelay, Coturn]]:
    root = stack_dir("chatmail-turn-")
    secret = root / "turn-secret"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o644)
    port = free_port()
    sections = {
        "metadata": {"turn_host": "127.0.0.1", "turn_port": port, "turn_secret_file": secret}
    }
    relay = LocalRelay(root, domain=DOMAIN, milter=False, config_sections=sections)
    coturn = Coturn(root, relay.config, port=port)
    try:
        with relay, coturn:
            yield relay, coturn
    except BaseException:
        print(coturn.log_text()[-5000:])
        raise
    finally:
        shutil.rmtree(root, ignore_errors=True)


def turn_value(relay: LocalRelay) -> str:
    imap = Imap(relay.dovecot.imaps_port).login(f"caller001@{DOMAIN}", "turn-test-password")
    values = imap.get("", "/shared/vendor/deltachat/turn")
    imap.close()
    return values["/shared/vendor/deltachat/turn"].decode()


def signed(username: str) -> str:
    digest = hmac.new(SECRET.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def test_coturn_grants_an_allocation_to_the_relays_credentials(stack):
    relay, coturn = stack
    host, port, username, password = turn_value(relay).split(":")
    assert (host, int(port)) == ("127.0.0.1", coturn.port)
    assert allocate(host, int(port), username, password) == 0


def test_coturn_refuses_wrong_and_expired_credentials(stack):
    relay, coturn = stack
    _host, _port, username, password = turn_value(relay).split(":")
    assert allocate("127.0.0.1", coturn.port, username, password[:-2] + "x=") == 401
    past = str(int(time.time()) - 60)
    assert allocate("127.0.0.1", coturn.port, past, signed(past)) == 401
    future = str(int(time.time()) + 3600)
    assert allocate("127.0.0.1", coturn.port, future, signed(future)) == 0  # the control


def test_the_rendered_configuration_is_clean(stack):
    _relay, coturn = stack
    log = coturn.log_text()
    assert "Default realm: chat.localhost" in log
    assert "Bad configuration" not in log, log
    errors = [line for line in log.splitlines() if "ERROR" in line]
    assert all("check_stun_auth" in line for line in errors), errors  # the refused ones only
