"""Port 25 between relays: whom it accepts mail for, and the bounces a relay sends itself."""

from __future__ import annotations

import secrets
import smtplib

import pytest
from harness.federation import home, new_account
from harness.maillog import milter_signature, milter_verified, queue_ids_of
from harness.messages import (
    TLS,
    dkim_verifies,
    maildir_files,
    new_message_id,
    sample,
    signature_domains,
    wait_until,
)

pytestmark = pytest.mark.stack

SECURE_JOIN_REQUEST = "legacy-vc-request-CLEARTEXT"  # cleartext a relay lets through


@pytest.mark.parametrize(
    "rcpt",
    [
        "someone@beta.test",
        "someone@outside.test",
        "someone@[127.0.0.2]",
        "someone@[127.0.0.3]",
        "someone@sub.alpha.test",
        "someone@alpha.test.outside.test",
    ],
)
def test_port_25_refuses_recipients_of_other_domains_at_rcpt(federation, rcpt):
    alpha = federation.alpha
    queued_before = alpha.postfix.queue_ids()
    with smtplib.SMTP(alpha.address, 25, timeout=30, source_address=("127.0.0.4", 0)) as smtp:
        smtp.ehlo("mx.outside.test")
        assert smtp.mail("sender@outside.test")[0] == 250
        code, text = smtp.rcpt(rcpt)
        assert code == 554 and text.startswith(b"5.7.1 "), (code, text)
        assert b"Relay access denied" in text
        # The relay's own users are accepted on the same connection: the refusal is the rule.
        assert smtp.rcpt(f"someone@{alpha.domain}")[0] == 250
        smtp.rset()
    assert alpha.postfix.queue_ids() == queued_before == []


def test_a_bounce_the_relay_makes_is_signed_and_the_other_relay_verifies_it(federation):
    """beta user -> unknown user on alpha: alpha's bounce (its own mail, signed by its milter)
    reaches the beta user through beta's DKIM check."""
    alpha, beta = federation.alpha, federation.beta
    sender = new_account(beta)
    unknown = f"nobody{secrets.token_hex(4)}@{alpha.domain}"
    message_id = new_message_id(beta.domain)
    message = sample(SECURE_JOIN_REQUEST, sender["email"], unknown, message_id)
    with smtplib.SMTP_SSL(beta.address, beta.postfix.smtps_port, context=TLS, timeout=30) as smtp:
        smtp.login(sender["email"], sender["password"])
        smtp.sendmail(sender["email"], [unknown], message)

    def bounces() -> list[bytes]:
        return [
            path.read_bytes()
            for path in maildir_files(home(beta, sender["email"]))
            if b"MAILER-DAEMON@alpha.test" in path.read_bytes()
        ]

    (bounce,) = wait_until(bounces)
    assert b"Content-Type: multipart/report" in bounce
    assert message_id.encode() in bounce  # it is about our message
    head = bounce.split(b"\n\n", 1)[0]
    bounce_id = head.split(b"Message-Id: <", 1)[1].split(b">", 1)[0].decode()
    # alpha's milter signed it, beta's verified it (so it went out signed), and beta stored
    # it without the signature: the one alpha logged holds on top of the stored file
    assert milter_verified(beta, bounce_id)
    assert signature_domains(bounce) == []
    field = milter_signature(alpha, bounce_id)
    assert field is not None and signature_domains(field + bounce) == [alpha.domain]
    assert dkim_verifies(field + bounce, federation.key_records())


def test_mail_to_a_server_whose_certificate_does_not_verify_waits_in_the_queue(federation):
    """outside.test offers STARTTLS with a self-signed certificate: alpha's verified TLS
    refuses it, so the message stays queued instead of going out to an unverified server."""
    alpha = federation.alpha
    sender = new_account(alpha)
    message_id = new_message_id(alpha.domain)
    message = sample(SECURE_JOIN_REQUEST, sender["email"], "someone@outside.test", message_id)
    with smtplib.SMTP_SSL(alpha.address, alpha.postfix.smtps_port, context=TLS, timeout=30) as smtp:
        smtp.login(sender["email"], sender["password"])
        smtp.sendmail(sender["email"], ["someone@outside.test"], message)
    # the SMTP attempt: after chatmail-mxsend handed it back (HTTPS failed), a queue id of
    # its own (docs/https-federation.md, Sending)

    def smtp_line() -> str | None:
        ids = queue_ids_of(alpha, message_id)
        return next(
            (
                line
                for line in alpha.postfix.log_text().splitlines()
                if "to=<someone@outside.test>" in line
                and "postfix/smtp[" in line
                and any(f"{qid}: to=" in line for qid in ids)
            ),
            None,
        )

    line = wait_until(smtp_line)
    queue_id = line.split(": to=", 1)[0].rsplit(" ", 1)[1]
    try:
        assert line and "status=deferred" in line, line
        assert "Server certificate not verified" in line, line
        assert "Untrusted TLS connection established to outside.test[" in alpha.postfix.log_text()
        assert alpha.postfix.queue_ids() == [queue_id]
        assert message_id not in federation.outside.log_text()
    finally:
        alpha.postfix.delete(queue_id)


def test_no_service_log_line_contains_an_ip_address(federation):
    """Run last (file order): after DNS failures, refusals and bounces, our services' logs at
    debug level still name no IP address (the addresses of the whole network are known)."""
    addresses = [federation.ns.address, federation.outside.address]
    addresses += [relay.address for relay in federation.relays]
    for relay in federation.relays:
        logs = relay.service_logs()
        assert "DKIM" in logs, "the milter logged nothing at debug level"
        offending = [line for line in logs.splitlines() if any(a in line for a in addresses)]
        assert offending == [], relay.domain
