"""A relay without a domain name (issue 11, item 5): `mail_domain` is the IPv4 address
127.0.0.2, addresses are `user@[127.0.0.2]`, the certificate is self-signed, and two real
Delta Chat accounts configured from `dclogin:` links with `ic=3` message each other.

On port 25 such a relay takes a From address literal (no DKIM possible) only from the server
at that address: anyone else's `From: alice@[127.0.0.2]` is refused."""

from __future__ import annotations

import shutil
import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import stack_dir
from harness.deltachat import deltachat_core, verify_and_chat
from harness.messages import imap_login, messages_with, new_message_id, sample, wait_until
from harness.relay import LocalRelay

pytestmark = pytest.mark.e2e

IP = "127.0.0.2"
OTHER_SERVER = "127.0.0.77"  # a server without a domain name that sends from its address
ENCRYPTED = "chat-text-alice-to-bob"


@pytest.fixture(scope="module")
def ip_relay() -> Iterator[LocalRelay]:
    root = stack_dir("chatmail-ip-relay-")
    # standard ports on its own loopback address; no DKIM key look-up leaves the machine
    relay = LocalRelay(
        root,
        domain=IP,
        address=IP,
        config_sections={
            "chatmail": {"log_level": "debug"},  # so that "never logged" means something
            "dkim": {"resolver": "127.0.0.1:9", "dns_timeout": 1},
        },
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


@pytest.fixture(scope="module")
def recipient(ip_relay: LocalRelay) -> str:
    """An account of the IP relay no client reads (created by its first IMAP login)."""
    answer = ip_relay.new_credentials()
    imap_login(IP, ip_relay.dovecot.imaps_port, answer["email"], answer["password"])
    return answer["email"]


def send_from(source: str, sender: str, rcpt: str, message: bytes) -> None:
    """Deliver on the relay's port 25 from the loopback address `source`."""
    with smtplib.SMTP(IP, 25, timeout=30, source_address=(source, 0)) as smtp:
        smtp.ehlo(f"[{source}]")
        smtp.sendmail(sender, [rcpt], message)


@pytest.mark.parametrize("forged", [f"alice@[{IP}]", "bob@[127.0.0.3]", "eve@[IPv6:::1]"])
def test_port_25_refuses_a_from_literal_that_is_not_the_senders_address(
    ip_relay, recipient, forged
):
    message_id = new_message_id("ip.test")
    message = sample(ENCRYPTED, forged, recipient, message_id)
    with pytest.raises(smtplib.SMTPDataError) as info:
        send_from(OTHER_SERVER, forged, recipient, message)
    assert (info.value.smtp_code, info.value.smtp_error) == (
        554,
        b"5.7.1 From address literal is not the sending server's address",
    )
    home = Path(ip_relay.config.chatmail.mailboxes_dir) / recipient
    assert messages_with(home, message_id.encode()) == []
    assert OTHER_SERVER not in ip_relay.service_logs()  # the client's address is never logged


def test_port_25_takes_a_from_literal_from_the_server_at_that_address(ip_relay, recipient):
    sender = f"carol@[{OTHER_SERVER}]"
    message_id = new_message_id("ip.test")
    send_from(OTHER_SERVER, sender, recipient, sample(ENCRYPTED, sender, recipient, message_id))
    home = Path(ip_relay.config.chatmail.mailboxes_dir) / recipient
    (stored,) = wait_until(lambda: messages_with(home, message_id.encode()))
    assert f"From: <{sender}>".encode() in stored or sender.encode() in stored
    assert b"dkim-signature" not in stored.lower()
