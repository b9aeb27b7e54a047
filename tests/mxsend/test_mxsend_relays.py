"""Remote mail through chatmail-mxsend between real relays: HTTPS alone where port 25 is
closed, SMTP at once where HTTPS fails, the skip after it, bounces over HTTPS, signed."""

from __future__ import annotations

import re
import secrets
import smtplib
import time
from pathlib import Path

import pytest
from harness.federation import new_account as account
from harness.maillog import milter_verified, queue_ids_of
from harness.messages import TLS, maildir_files, new_message_id, sample, wait_until
from harness.relay import LocalRelay

pytestmark = pytest.mark.stack

ENCRYPTED = "chat-text-alice-to-bob"
BY_HTTPS = "status=sent (250 2.0.0 Ok: delivered over HTTPS)"
HANDED_BACK = "status=sent (250 2.0.0 Ok: handed to SMTP)"


def home(relay: LocalRelay, addr: str) -> Path:
    return Path(relay.config.chatmail.mailboxes_dir) / addr


def send(relay: LocalRelay, sender: dict[str, str], rcpts: list[str], message: bytes) -> None:
    with smtplib.SMTP_SSL(relay.address, relay.postfix.smtps_port, context=TLS, timeout=30) as s:
        s.login(sender["email"], sender["password"])
        s.sendmail(sender["email"], rcpts, message)


def stored(relay: LocalRelay, addr: str, message_id: str) -> list[bytes]:
    return [
        data
        for data in (path.read_bytes() for path in maildir_files(home(relay, addr)))
        if message_id.encode() in data
    ]


def delivery_lines(relay: LocalRelay, message_id: str) -> list[str]:
    """The sending Postfix's status lines of the message (all of its queue ids)."""
    ids = queue_ids_of(relay, message_id)
    return [
        line
        for line in relay.postfix.log_text().splitlines()
        if "status=" in line and any(f" {qid}: to=" in line for qid in ids)
    ]


def https_failures(relay: LocalRelay) -> int:
    return relay.service_logs().count("HTTPS to a host of the domain failed")


def test_mail_goes_over_https_alone_both_ways(relays):
    gamma, delta = relays.gamma, relays.delta
    for sender_relay, rcpt_relay in ((gamma, delta), (delta, gamma)):
        sender, rcpt = account(sender_relay), account(rcpt_relay)
        message_id = new_message_id(sender_relay.domain)
        message = sample(ENCRYPTED, sender["email"], rcpt["email"], message_id)
        send(sender_relay, sender, [rcpt["email"]], message)
        (data,) = wait_until(
            lambda r=rcpt_relay, a=rcpt["email"], m=message_id: stored(r, a, m), timeout=30
        )
        lines = delivery_lines(sender_relay, message_id)
        assert len(lines) == 1 and "postfix/mxsend" in lines[0] and BY_HTTPS in lines[0], lines
        # the receiving relay took it on its /mxdeliv smtpd and verified the signature
        assert milter_verified(rcpt_relay, message_id)
        assert "postfix/mxdeliv" in rcpt_relay.postfix.log_text()
        assert data.count(b"Message-ID:") == 1


def test_recipients_of_two_domains_and_several_of_one(relays):
    gamma, delta, eps = relays.gamma, relays.delta, relays.eps
    sender = account(gamma)
    rcpts = [account(delta)["email"], account(delta)["email"], account(eps)["email"]]
    message_id = new_message_id(gamma.domain)
    message = sample(ENCRYPTED, sender["email"], rcpts[0], message_id)
    send(gamma, sender, rcpts, message)
    for relay, addr in ((delta, rcpts[0]), (delta, rcpts[1]), (eps, rcpts[2])):
        wait_until(lambda relay=relay, addr=addr: stored(relay, addr, message_id), timeout=30)
    lines = delivery_lines(gamma, message_id)
    assert sum(BY_HTTPS in line for line in lines) == 3, lines


def test_a_bounce_goes_back_over_https_signed(relays):
    """gamma user -> unknown user on delta over HTTPS: delta accepts it on /mxdeliv, Dovecot
    has no such user, delta's bounce (null sender, signed by its milter) reaches gamma over
    HTTPS (neither has port 25) and passes gamma's strict DKIM check."""
    gamma, delta = relays.gamma, relays.delta
    sender = account(gamma)
    unknown = f"nobody{secrets.token_hex(4)}@{delta.domain}"
    message_id = new_message_id(gamma.domain)
    send(gamma, sender, [unknown], sample(ENCRYPTED, sender["email"], unknown, message_id))

    def bounces() -> list[bytes]:
        return [
            path.read_bytes()
            for path in maildir_files(home(gamma, sender["email"]))
            if f"MAILER-DAEMON@{delta.domain}".encode() in path.read_bytes()
        ]

    (bounce,) = wait_until(bounces, timeout=30)
    assert message_id.encode() in bounce
    bounce_id = re.search(rb"Message-Id: <([^>]+)>", bounce, re.I).group(1).decode()
    assert milter_verified(gamma, bounce_id)
    lines = delivery_lines(delta, bounce_id)
    assert any("postfix/mxsend" in line and BY_HTTPS in line for line in lines), lines


def test_https_down_smtp_at_once_then_the_skip_holds(relays):
    """eps.test's nginx stopped: the message is handed back to Postfix and goes over SMTP at
    once (no queue retry); the next one goes to SMTP without trying HTTPS; after the skip
    (`[federation] https_skip`, shortened for the test) HTTPS is tried again."""
    gamma, eps = relays.gamma, relays.eps
    sender, rcpt = account(gamma), account(eps)
    assert eps.web is not None
    eps.web.nginx.stop()
    try:
        failures = https_failures(gamma)
        ids = []
        for round_ in range(2):
            message_id = new_message_id(gamma.domain)
            ids.append(message_id)
            started = time.monotonic()
            send(
                gamma,
                sender,
                [rcpt["email"]],
                sample(ENCRYPTED, sender["email"], rcpt["email"], message_id),
            )
            wait_until(lambda m=message_id: stored(eps, rcpt["email"], m), timeout=30)
            assert time.monotonic() - started < 20  # at once, not after a queue retry
            lines = delivery_lines(gamma, message_id)
            assert any("postfix/mxsend" in line and HANDED_BACK in line for line in lines)
            assert any(
                "postfix/smtp[" in line
                and f"relay={eps.domain}[{eps.address}]:25" in line
                and "status=sent" in line
                for line in lines
            ), lines
            # HTTPS was tried for the first message only: the second went straight to SMTP
            assert https_failures(gamma) == failures + 1, round_
        assert milter_verified(eps, ids[-1])
    finally:
        eps.web.nginx.start()
    time.sleep(gamma.config.federation.https_skip)  # the shortened skip runs out
    message_id = new_message_id(gamma.domain)
    send(
        gamma,
        sender,
        [rcpt["email"]],
        sample(ENCRYPTED, sender["email"], rcpt["email"], message_id),
    )
    wait_until(lambda: stored(eps, rcpt["email"], message_id), timeout=30)
    assert any(BY_HTTPS in line for line in delivery_lines(gamma, message_id))


def test_an_address_literal_goes_to_smtp(relays):
    """someone@[127.0.0.53] has no DNS name to look up or verify: Postfix's SMTP delivers it
    (eps.test refuses a literal at RCPT, so the sender gets gamma's bounce), not a 5xx of
    mxsend for a domain that does not exist."""
    gamma, eps = relays.gamma, relays.eps
    sender = account(gamma)
    literal = f"someone@[{eps.address}]"
    message_id = new_message_id(gamma.domain)
    send(gamma, sender, [literal], sample(ENCRYPTED, sender["email"], literal, message_id))
    wait_until(
        lambda: any("Relay access denied" in line for line in delivery_lines(gamma, message_id)),
        timeout=30,
    )
    lines = delivery_lines(gamma, message_id)
    assert any("postfix/mxsend" in line and HANDED_BACK in line for line in lines), lines


def test_each_recipient_gets_its_own_outcome_in_one_transaction(relays):
    """One message to a delta.test user (HTTPS) and to an address literal (SMTP): Postfix's
    LMTP client gets one reply per recipient, each logged with its own status."""
    gamma, delta, eps = relays.gamma, relays.delta, relays.eps
    sender, rcpt = account(gamma), account(delta)
    literal = f"someone@[{eps.address}]"
    message_id = new_message_id(gamma.domain)
    message = sample(ENCRYPTED, sender["email"], rcpt["email"], message_id)
    send(gamma, sender, [rcpt["email"], literal], message)
    wait_until(lambda: stored(delta, rcpt["email"], message_id), timeout=30)
    (first,) = queue_ids_of(gamma, message_id)[:1]
    lines = [line for line in delivery_lines(gamma, message_id) if f" {first}: to=" in line]
    by_rcpt = {line.split(" to=<", 1)[1].split(">", 1)[0]: line for line in lines}
    assert BY_HTTPS in by_rcpt[rcpt["email"]], lines
    assert HANDED_BACK in by_rcpt[literal], lines


def test_a_tls_policy_of_none_means_no_https(relays):
    """`delta.test none` in gamma's tls_policy (the table Postfix's SMTP reads): mxsend does
    not post to delta (HTTPS has no cleartext) and hands the message to SMTP, which cannot
    reach delta's closed port 25: it waits in gamma's queue."""
    gamma, delta = relays.gamma, relays.delta
    policy = Path(gamma.config.federation.tls_policy)
    original = policy.read_text()
    sender, rcpt = account(gamma), account(delta)
    message_id = new_message_id(gamma.domain)
    policy.write_text(original + f"{delta.domain} none\n")
    try:
        send(
            gamma,
            sender,
            [rcpt["email"]],
            sample(ENCRYPTED, sender["email"], rcpt["email"], message_id),
        )
        wait_until(
            lambda: any("postfix/smtp[" in line for line in delivery_lines(gamma, message_id)),
            timeout=30,
        )
    finally:
        policy.write_text(original)
    lines = delivery_lines(gamma, message_id)
    assert any(HANDED_BACK in line for line in lines), lines
    assert not any(BY_HTTPS in line for line in lines), lines
    assert stored(delta, rcpt["email"], message_id) == []
    for queue_id in gamma.postfix.queue_ids():
        gamma.postfix.delete(queue_id)


def test_no_service_log_line_contains_an_ip_address(relays):
    """Run last (file order): after HTTPS deliveries, failures, hand-backs and bounces, our
    services' logs at debug level name no address of the network."""
    addresses = [relays.ns.address] + [relay.address for relay in relays.all]
    for relay in relays.all:
        logs = relay.service_logs()
        assert "chatmail.mxsend" in logs
        offending = [line for line in logs.splitlines() if any(a in line for a in addresses)]
        assert offending == [], relay.domain
