"""A relay without a domain name (issue 11, item 5): `mail_domain` is the IPv4 address
127.0.0.2, addresses are `user@[127.0.0.2]`, the certificate is self-signed, and two real
Delta Chat accounts configured from `dclogin:` links with `ic=3` message each other."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import stack_dir
from harness.deltachat import deltachat_core, verify_and_chat
from harness.relay import LocalRelay

pytestmark = pytest.mark.e2e

IP = "127.0.0.2"


@pytest.fixture(scope="module")
def ip_relay() -> Iterator[LocalRelay]:
    root = stack_dir("chatmail-ip-relay-")
    # standard ports on its own loopback address; no DKIM key look-up leaves the machine
    relay = LocalRelay(
        root,
        domain=IP,
        address=IP,
        config_sections={"dkim": {"resolver": "127.0.0.1:9", "dns_timeout": 1}},
    )
    with relay:
        yield relay
    shutil.rmtree(root, ignore_errors=True)


def test_two_accounts_on_an_ip_address_relay_message_each_other(ip_relay, tmp_path):
    mailboxes = Path(ip_relay.config.chatmail.mailboxes_dir)
    credentials = [ip_relay.new_credentials() for _ in range(2)]
    for answer in credentials:
        assert answer["email"].endswith(f"@[{IP}]"), answer
    with deltachat_core(tmp_path / "accounts") as core:
        accounts = []
        for answer in credentials:
            link = ip_relay.dclogin_uri(answer["email"], answer["password"])
            assert "ic=3" in link
            account = core.add_account()
            account.add_transport_from_qr(link)
            assert account.is_configured()
            assert account.get_config("configured_addr") == answer["email"]
            account.bring_online()
            accounts.append(account)
        for answer in credentials:  # the first login created `user@[ip]`
            assert (mailboxes / answer["email"] / "password").exists()
        alice, bob = accounts
        verify_and_chat(alice, bob, "hello over an address literal", "and back")
