"""Real Delta Chat accounts on two relays: Secure-Join and chat across relays.

alice lives on alpha.test, bob on beta.test; one deltachat-rpc-server holds both. Mail between
them goes alpha's Postfix -> DNS (MX) -> beta's port 25 over verified TLS, signed by the
sending relay's milter and verified by the receiving one. Each relay copies what it receives
to its observer account (always_bcc), whose Maildir shows what was delivered.
"""

from __future__ import annotations

import re

import pytest
from harness.deltachat import verify_and_chat
from harness.federation import home, observer
from harness.maillog import milter_signature, milter_verified
from harness.messages import dkim_verifies, maildir_files, signature_domains, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def pair(federation, deltachat):
    """alice on alpha, bob on beta: Delta Chat accounts made by their first logins."""
    accounts = []
    for relay in federation.relays:
        credentials = relay.new_credentials()
        account = deltachat.add_account()
        account.add_or_update_transport(
            relay.deltachat_transport(credentials["email"], credentials["password"])
        )
        account.bring_online()
        accounts.append((account, credentials["email"]))
    return accounts


def received_from(relay, sender: str) -> list[bytes]:
    """What the relay delivered from `sender` (the observer's copies), oldest first."""
    needle = f"From: <{sender}>".encode()
    found = []
    for path in maildir_files(home(relay, observer(relay))):
        data = path.read_bytes()
        if needle in data.split(b"\n\n", 1)[0]:
            found.append(data)
    return found


def message_id(data: bytes) -> str:
    match = re.search(rb"^Message-ID:\s*<([^>]+)>", data, re.IGNORECASE | re.MULTILINE)
    assert match, data[:300]
    return match.group(1).decode()


def test_secure_join_and_chat_across_relays_signed_verified_and_encrypted(federation, pair):
    (alice, alice_addr), (bob, bob_addr) = pair
    verify_and_chat(alice, bob, "hello alice, from beta", "hello bob, from alpha")

    records = federation.key_records()
    for sender, sending, receiving in (
        (alice_addr, federation.alpha, federation.beta),
        (bob_addr, federation.beta, federation.alpha),
    ):
        # The join takes two messages each way, the chat one more.
        delivered = wait_until(lambda r=receiving, s=sender: len(received_from(r, s)) >= 3)
        assert delivered, f"{receiving.domain} stored too little from {sender}"
        for data in received_from(receiving, sender):
            head = data.split(b"\n\n", 1)[0]
            assert b"Content-Type: multipart/encrypted" in head, head
            assert b"-----BEGIN PGP MESSAGE-----" in data
            assert b"hello" not in data
            # Signed by the sending relay, the receiving relay's milter checked the signature
            # before accepting, and stored the message without it ...
            assert milter_verified(receiving, message_id(data)), message_id(data)
            assert signature_domains(data) == [], head
            # ... and the signature the sending relay logged holds on top of the stored file.
            field = milter_signature(sending, message_id(data))
            assert field is not None, message_id(data)
            assert signature_domains(field + data) == [sending.domain], head
            assert dkim_verifies(field + data, records), head


def test_outgoing_tls_between_relays_is_verified(federation, pair):
    """Both relays sent over TLS with the peer's certificate checked (CA and MX name)."""
    for sending, receiving in (
        (federation.alpha, federation.beta),
        (federation.beta, federation.alpha),
    ):
        log = sending.postfix.log_text()
        established = re.findall(rf"(\w+) TLS connection established to {receiving.domain}\[", log)
        assert established, f"{sending.domain} never sent to {receiving.domain} over TLS"
        assert set(established) == {"Verified"}, established
        assert f"relay={receiving.domain}[{receiving.address}]:25" in log
