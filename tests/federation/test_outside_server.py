"""A classic mail server (outside.test, plain Postfix) sends to a relay: DKIM decides at DATA.

Each message goes from the test to the outside server over SMTP, and from there, as any
server on the internet would send it, to beta.test's port 25. What beta answered is read from
the outside server's log (and its queue); what was stored, from the recipient's Maildir.
"""

from __future__ import annotations

import smtplib

import pytest
from harness.federation import LATE, OUTSIDE, OUTSIDE_SELECTOR, home, new_account, observer
from harness.maillog import milter_verified
from harness.messages import (
    cleartext,
    dkim_sign,
    dkim_verifies,
    messages_with,
    new_message_id,
    sample,
    signature_domains,
    wait_until,
)

pytestmark = pytest.mark.stack

ENCRYPTED = "chat-text-alice-to-bob"


@pytest.fixture(scope="module")
def recipient(federation):
    """A beta account no client reads: what arrives stays in its Maildir."""
    return new_account(federation.beta)["email"]


def hand_over(federation, mail_from: str, rcpt: str, message: bytes) -> None:
    """Give the message to the outside server, which relays it to the recipient's MX."""
    outside = federation.outside
    with smtplib.SMTP(outside.address, outside.port, timeout=30) as smtp:
        smtp.sendmail(mail_from, [rcpt], message)


def signed(federation, message: bytes, domain: str = OUTSIDE[0]) -> bytes:
    return dkim_sign(message, domain, OUTSIDE_SELECTOR, federation.outside_key)


def stored(federation, rcpt: str, message_id: str) -> list[bytes]:
    return messages_with(home(federation.beta, rcpt), f"<{message_id}>".encode())


def refused(federation, rcpt: str, message: bytes, message_id: str) -> str:
    """Send through the outside server; the reply of the bounce it logged (nothing stored)."""
    hand_over(federation, f"sender@{OUTSIDE[0]}", rcpt, message)
    status, reply = federation.outside.outcome(message_id)
    assert status == "bounced", (status, reply)
    assert stored(federation, rcpt, message_id) == []
    assert (
        messages_with(home(federation.beta, observer(federation.beta)), message_id.encode()) == []
    )
    return reply


def test_unsigned_mail_is_refused(federation, recipient):
    message_id = new_message_id(OUTSIDE[0])
    message = sample(ENCRYPTED, f"sender@{OUTSIDE[0]}", recipient, message_id)
    reply = refused(federation, recipient, message, message_id)
    assert "554 5.7.1 No DKIM signature found" in reply


def test_broken_signature_is_refused(federation, recipient):
    message_id = new_message_id(OUTSIDE[0])
    message = signed(federation, sample(ENCRYPTED, f"sender@{OUTSIDE[0]}", recipient, message_id))
    # The body changed after signing (simple body canonicalization keeps trailing spaces).
    broken = message.replace(b"\r\nVersion: 1\r\n", b"\r\nVersion: 1 \r\n", 1)
    assert broken != message
    reply = refused(federation, recipient, broken, message_id)
    assert "554 5.7.1 No valid DKIM signature found" in reply


def test_valid_signature_of_another_domain_is_refused(federation, recipient):
    """d=outside.test verifies (its key is published) but the From domain is other.test."""
    message_id = new_message_id("other.test")
    message = signed(federation, sample(ENCRYPTED, "someone@other.test", recipient, message_id))
    assert dkim_verifies(message, federation.key_records())
    reply = refused(federation, recipient, message, message_id)
    assert "554 5.7.1 No valid DKIM signature found" in reply


def test_valid_signature_of_the_from_domain_that_does_not_sign_from_is_refused(
    federation, recipient
):
    """d=outside.test, valid, but its h= lacks From: whoever got one such signed message could
    put any From of outside.test above it (RFC 6376 6.1.1: such a signature is ignored)."""
    message_id = new_message_id(OUTSIDE[0])
    message = sample(ENCRYPTED, f"sender@{OUTSIDE[0]}", recipient, message_id)
    headers = (b"subject", b"to", b"date", b"message-id", b"content-type")
    forged = dkim_sign(message, OUTSIDE[0], OUTSIDE_SELECTOR, federation.outside_key, headers)
    assert dkim_verifies(forged, federation.key_records())
    assert signature_domains(forged) == [OUTSIDE[0]]
    reply = refused(federation, recipient, forged, message_id)
    assert "554 5.7.1 No valid DKIM signature found" in reply


def test_forged_from_of_the_relays_own_domain_is_refused(federation, recipient):
    """From: admin@beta.test, sent to beta by an outside server: unsigned, or signed by the
    outside domain (valid, but not beta's key)."""
    beta = federation.beta.domain
    message_id = new_message_id(beta)
    forged = sample(ENCRYPTED, f"admin@{beta}", recipient, message_id)
    for message, expected in (
        (forged, "554 5.7.1 No DKIM signature found"),
        (signed(federation, forged), "554 5.7.1 No valid DKIM signature found"),
    ):
        hand_over(federation, f"sender@{OUTSIDE[0]}", recipient, message)
        status, reply = federation.outside.outcome(message_id)
        assert status == "bounced", (status, reply)
        assert expected in reply, reply
    assert stored(federation, recipient, message_id) == []


@pytest.mark.parametrize("signer", ["outside", "alpha"])
def test_validly_signed_cleartext_gets_523(federation, recipient, signer):
    """DKIM passes, then the encryption policy refuses incoming cleartext (523): from a
    classic domain, and signed with the other relay's own key (as if alpha had sent it)."""
    if signer == "alpha":
        alpha = federation.alpha
        domain, selector, key = (
            alpha.domain,
            alpha.config.dkim.selector,
            alpha.dkim_key.read_bytes(),
        )
    else:
        domain, selector, key = OUTSIDE[0], OUTSIDE_SELECTOR, federation.outside_key
    message_id = new_message_id(domain)
    message = cleartext(f"sender@{domain}", recipient, message_id)
    message = dkim_sign(message, domain, selector, key)
    assert dkim_verifies(message, federation.key_records())
    reply = refused(federation, recipient, message, message_id)
    assert "523 5.7.10 Encryption Needed" in reply
    assert milter_verified(federation.beta, message_id)


def signature_of(message: bytes) -> bytes:
    """The DKIM-Signature field on top of a message `dkim_sign` made (CRLF-terminated)."""
    field, _, rest = message.partition(b"\r\n")
    while rest[:1] in (b" ", b"\t"):
        line, _, rest = rest.partition(b"\r\n")
        field += b"\r\n" + line
    assert field.startswith(b"DKIM-Signature:"), field
    return field + b"\r\n"


def test_validly_signed_encrypted_mail_is_stored_without_its_signature(federation, recipient):
    """Verified by beta's milter, then stored without DKIM-Signature and Authentication-
    Results; what was signed is stored intact (the signature holds on top of the file)."""
    message_id = new_message_id(OUTSIDE[0])
    message = signed(federation, sample(ENCRYPTED, f"sender@{OUTSIDE[0]}", recipient, message_id))
    claimed = b"Authentication-Results: beta.test; dkim=pass header.d=outside.test\r\n"
    field = signature_of(message)
    hand_over(
        federation, f"sender@{OUTSIDE[0]}", recipient, field + claimed + message[len(field) :]
    )
    status, reply = federation.outside.outcome(message_id)
    assert status == "sent", reply
    (delivered,) = wait_until(lambda: stored(federation, recipient, message_id))
    assert signature_domains(delivered) == []
    assert b"authentication-results" not in delivered.split(b"\n\n", 1)[0].lower()
    assert dkim_verifies(field + delivered, federation.key_records())
    assert milter_verified(federation.beta, message_id)


def test_mail_sent_while_dns_is_down_waits_and_arrives_once_dns_is_back(federation, recipient):
    """The key of late.test cannot be fetched: 4xx, the outside server keeps the message."""
    message_id = new_message_id(LATE)
    message = signed(federation, sample(ENCRYPTED, f"sender@{LATE}", recipient, message_id), LATE)
    federation.ns.stop()
    try:
        hand_over(federation, f"sender@{LATE}", recipient, message)
        status, reply = federation.outside.outcome(message_id)
        assert status == "deferred", reply
        assert " 451 4.7.5 " in f" {reply}", reply
        assert len(federation.outside.queue_ids()) == 1
        assert stored(federation, recipient, message_id) == []
    finally:
        federation.ns.start()
    federation.outside.flush()
    status, reply = federation.outside.outcome(message_id)
    assert status == "sent", reply
    (delivered,) = wait_until(lambda: stored(federation, recipient, message_id))
    assert signature_domains(delivered) == []  # stripped on delivery, after beta verified it
    assert dkim_verifies(signature_of(message) + delivered, federation.key_records())
    assert milter_verified(federation.beta, message_id)
    assert wait_until(lambda: federation.outside.queue_ids() == [], timeout=10)
