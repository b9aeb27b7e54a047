"""End to end: the real Delta Chat core gets its accounts from /new (through nginx, on a
whole local relay on this area's loopback address with the standard ports) and chats.

The core's own HTTPS request to /new would refuse the self-signed test certificate (and could
not resolve the test domain to this address), so the contract is checked with an HTTP client
as the core sends it (POST, empty body) and the core is configured from the `dclogin_url` of
the answer; the core itself checks that the home page's link is an account QR code."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import stack_dir
from harness.deltachat import deltachat_core, verify_and_chat
from harness.relay import LocalRelay
from web.conftest import WEB_ADDRESS

pytestmark = pytest.mark.e2e

DOMAIN = "chat.localhost"


@pytest.fixture(scope="module")
def relay() -> Iterator[LocalRelay]:
    root = stack_dir("chatmail-web-e2e-")
    relay = LocalRelay(
        root,
        domain=DOMAIN,
        address=WEB_ADDRESS,
        web=True,
        # no DKIM key look-up leaves the machine (nothing answers on port 9)
        config_sections={"dkim": {"resolver": "127.0.0.1:9", "dns_timeout": 1}},
    )
    with relay:
        yield relay
    shutil.rmtree(root, ignore_errors=True)


def test_accounts_from_new_log_in_and_chat(relay, tmp_path):
    assert relay.web is not None
    mailboxes = Path(relay.config.chatmail.mailboxes_dir)
    answers = [relay.web.new_account() for _ in range(2)]
    assert list(mailboxes.iterdir()) == []  # nothing stored before the first login
    status, _headers, home = relay.web.request("GET", "/")
    assert status == 200
    link = re.search(rb"DCACCOUNT:https://[^<\"]+", home)
    assert link and link[0].decode() == f"DCACCOUNT:https://{DOMAIN}/new"
    with deltachat_core(tmp_path / "accounts") as core:
        accounts = []
        for answer in answers:
            account = core.add_account()
            qr = account.check_qr(link[0].decode())
            assert qr["kind"] == "account" and qr["domain"] == DOMAIN, qr
            login = account.check_qr(answer["dclogin_url"])
            assert login["kind"] == "login" and login["address"] == answer["email"], login
            account.add_transport_from_qr(answer["dclogin_url"])
            assert account.is_configured()
            account.bring_online()
            accounts.append(account)
        for answer in answers:  # the first login created the account
            assert (mailboxes / answer["email"] / "password").exists()
        alice, bob = accounts
        verify_and_chat(alice, bob, "hello, via /new")
