"""POST /mxdeliv through the real parts: nginx, chatmail-mxdeliv, Postfix's loopback smtpd with
the milter (DKIM verified against nsd), Dovecot's delivery into the Maildirs.

The client posts exactly as the reference relay's filtermail does: the DATA bytes (dot-stuffed,
CRLF, without the final `.CRLF`), lower-case header names, one `x-mail-to` per recipient, no
`x-mail-from` for a bounce.
"""

from __future__ import annotations

import re

import pytest
from chatmail_services.mxdeliv.data import stuff
from harness.federation import OUTSIDE_SELECTOR, home, new_account
from harness.maillog import milter_verified, queue_ids_of
from harness.messages import (
    dkim_sign,
    messages_with,
    new_message_id,
    sample,
    wait_until,
)
from harness.net import free_port
from harness.web import WebFront
from mxdeliv.conftest import ADDRESS, COLD, MAX_MESSAGE_SIZE, SENDER

from chatmail_services.config import load_config
from chatmail_services.layout import ENFORCE_E2EE_MARKER

pytestmark = pytest.mark.stack

ENCRYPTED = "chat-text-alice-to-bob"
INVALID_DATA = (400, b"500 Invalid DATA")


def post(
    relay,
    body: bytes,
    rcpts: list[str],
    mail_from: str | None = None,
    method: str = "POST",
) -> tuple[int, bytes]:
    """One request as filtermail makes it: (status, body)."""
    conn = relay.web.https(timeout=120)
    try:
        conn.putrequest(method, "/mxdeliv", skip_host=True, skip_accept_encoding=True)
        conn.putheader("host", relay.domain)
        if mail_from is not None:
            conn.putheader("x-mail-from", mail_from)
        for rcpt in rcpts:
            conn.putheader("x-mail-to", rcpt)
        conn.putheader("content-length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def signed(network, message: bytes, domain: str = SENDER) -> bytes:
    return dkim_sign(message, domain, OUTSIDE_SELECTOR, network.key)


def stored(relay, rcpt: str, message_id: str) -> list[bytes]:
    return messages_with(home(relay, rcpt), f"<{message_id}>".encode())


def encrypted(network, rcpt: str, sender: str = f"alice@{SENDER}") -> tuple[str, bytes]:
    """A signed Delta Chat message from the other relay: (its Message-ID, the message)."""
    message_id = new_message_id(SENDER)
    return message_id, signed(network, sample(ENCRYPTED, sender, rcpt, message_id))


def cleartext(sender: str, rcpt: str, message_id: str, body: bytes) -> bytes:
    head = (
        f"From: <{sender}>\r\nTo: <{rcpt}>\r\nSubject: hi\r\n"
        f"Date: Tue, 01 Dec 2026 12:00:00 +0000\r\nMessage-ID: <{message_id}>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
    )
    return head.encode() + body


@pytest.fixture(scope="module")
def rcpts(network) -> list[str]:
    """Two accounts of the relay no client reads (what arrives stays in their Maildirs)."""
    return [new_account(network.relay)["email"] for _ in range(2)]


def test_signed_mail_for_two_recipients_is_delivered_to_both(network, rcpts):
    relay = network.relay
    message_id, message = encrypted(network, rcpts[0])
    status, body = post(relay, stuff(message), rcpts, mail_from=f"alice@{SENDER}")
    assert (status, body) == (200, b"250 OK")
    for rcpt in rcpts:
        (delivered,) = wait_until(lambda rcpt=rcpt: stored(relay, rcpt, message_id))
        assert b"Return-Path: <alice@sender.test>" in delivered
    assert milter_verified(relay, message_id)  # the milter verified it, as on port 25


def test_a_bounce_without_x_mail_from_is_delivered_with_the_null_sender(network, rcpts):
    relay = network.relay
    message_id, message = encrypted(network, rcpts[0], sender=f"mailer-daemon@{SENDER}")
    assert post(relay, stuff(message), rcpts[:1]) == (200, b"250 OK")
    (delivered,) = wait_until(lambda: stored(relay, rcpts[0], message_id))
    assert b"Return-Path: <>" in delivered


def test_an_envelope_sender_other_than_from_is_reset_as_on_port_25(network, rcpts):
    """The milter accepts it and sets the envelope sender to <> (policy._incoming_accept)."""
    relay = network.relay
    message_id, message = encrypted(network, rcpts[0])
    status, body = post(relay, stuff(message), rcpts[:1], mail_from=f"other@{SENDER}")
    assert (status, body) == (200, b"250 OK")
    (delivered,) = wait_until(lambda: stored(relay, rcpts[0], message_id))
    assert b"Return-Path: <>" in delivered


def test_dot_stuffed_lines_arrive_as_they_were_written(network):
    """Cleartext to an account that takes it (no enforcement marker), with lines starting
    with dots and a lone dot: stuffed on the wire, as written in the Maildir."""
    relay = network.relay
    rcpt = new_account(relay)["email"]
    (home(relay, rcpt) / ENFORCE_E2EE_MARKER).unlink()
    message_id = new_message_id(SENDER)
    text = b"first\r\n.\r\n.hidden\r\n..two\r\n...\r\nlast\r\n"
    message = signed(network, cleartext(f"bob@{SENDER}", rcpt, message_id, text))
    assert b"\r\n..hidden\r\n" in stuff(message)
    assert post(relay, stuff(message), [rcpt], mail_from=f"bob@{SENDER}") == (200, b"250 OK")
    (delivered,) = wait_until(lambda: stored(relay, rcpt, message_id))
    lines = delivered.replace(b"\r\n", b"\n")
    assert lines.endswith(b"\n\nfirst\n.\n.hidden\n..two\n...\nlast\n"), delivered[-200:]


def refused_without_trace(relay, rcpts, message_id: str, reply: tuple[int, bytes]) -> None:
    """Nothing of the message was stored, nothing stayed queued."""
    assert all(stored(relay, rcpt, message_id) == [] for rcpt in rcpts), reply
    assert relay.postfix.queue_ids() == []


def test_unsigned_mail_is_refused_with_554(network, rcpts):
    relay = network.relay
    message_id = new_message_id(SENDER)
    message = sample(ENCRYPTED, f"alice@{SENDER}", rcpts[0], message_id)
    reply = post(relay, stuff(message), rcpts, mail_from=f"alice@{SENDER}")
    assert reply == (400, b"554 5.7.1 No DKIM signature found")
    refused_without_trace(relay, rcpts, message_id, reply)


def test_validly_signed_cleartext_is_refused_with_523(network, rcpts):
    relay = network.relay
    message_id = new_message_id(SENDER)
    message = signed(network, cleartext(f"bob@{SENDER}", rcpts[0], message_id, b"hello\r\n"))
    reply = post(relay, stuff(message), rcpts[:1], mail_from=f"bob@{SENDER}")
    assert reply == (400, b"523 5.7.10 Encryption Needed: Invalid Unencrypted Mail")
    assert milter_verified(relay, message_id)  # DKIM passed: the encryption policy refused
    refused_without_trace(relay, rcpts, message_id, reply)


@pytest.mark.parametrize("others", [["someone@other.test"], ["someone@[127.0.0.31]"]])
def test_one_recipient_that_is_not_local_refuses_the_whole_request(network, rcpts, others):
    relay = network.relay
    message_id, message = encrypted(network, rcpts[0])
    status, body = post(relay, stuff(message), [rcpts[0], *others, rcpts[1]], f"alice@{SENDER}")
    assert status == 400
    assert body.startswith(b"554 5.7.1 ") and b"Relay access denied" in body, body
    assert b"\n" not in body
    refused_without_trace(relay, rcpts, message_id, (status, body))
    assert queue_ids_of(relay, message_id) == []  # refused at RCPT: never queued


def test_a_body_over_the_size_limit_is_413_from_nginx(network, rcpts):
    relay = network.relay
    body = b"x" * 998 + b"\r\n"
    body *= MAX_MESSAGE_SIZE // len(body) + 1
    assert len(body) > MAX_MESSAGE_SIZE
    assert post(relay, body, rcpts[:1], f"alice@{SENDER}") == (
        413,
        b"552 Message exceeds maximum size",
    )


def test_a_body_over_nginxs_default_limit_reaches_postfix(network, rcpts):
    """nginx passes bodies up to the maximum message size (its default of 1 MiB is lifted): an
    unsigned message of 1.25 MiB, padded with header fields, gets the milter's answer."""
    relay = network.relay
    assert MAX_MESSAGE_SIZE > 1.5 * 1024 * 1024
    message_id = new_message_id(SENDER)
    message = sample(ENCRYPTED, f"alice@{SENDER}", rcpts[0], message_id)
    head, _, rest = message.partition(b"\r\n\r\n")
    padding = b"X-Padding: " + b"p" * 900 + b"\r\n"
    big = head + b"\r\n" + padding * (1300 * 1024 // len(padding)) + b"\r\n" + rest
    assert 1.2 * 1024 * 1024 < len(stuff(big)) < MAX_MESSAGE_SIZE
    reply = post(relay, stuff(big), rcpts[:1], f"alice@{SENDER}")
    assert reply == (400, b"554 5.7.1 No DKIM signature found")


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_anything_but_post_is_405(network, rcpts, method):
    status, _body = post(network.relay, b"", rcpts[:1], f"alice@{SENDER}", method=method)
    assert status == 405


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data.replace(b"\r\n", b"\n", 1),  # a bare LF
        lambda data: data.replace(b"\r\n", b"\r", 1),  # a bare CR
        lambda data: data.rstrip(b"\r\n"),  # no final CRLF
        lambda data: data + b".\r\n",  # the terminating dot sent along
        lambda data: data.replace(b"\r\n\r\n", b"\r\n\r\n.\r\nmore\r\n", 1),  # CRLF.CRLF inside
        lambda data: b".\r\n" + data,  # a leading .CRLF
    ],
    ids=["bare-lf", "bare-cr", "no-final-crlf", "final-dot", "crlf-dot-crlf", "leading-dot"],
)
def test_malformed_data_is_400_invalid_data(network, rcpts, damage):
    relay = network.relay
    message_id, message = encrypted(network, rcpts[0])
    reply = post(relay, damage(stuff(message)), rcpts[:1], f"alice@{SENDER}")
    assert reply == INVALID_DATA
    refused_without_trace(relay, rcpts, message_id, reply)


def test_with_the_milter_stopped_it_is_a_temporary_failure(network, rcpts):
    relay = network.relay
    message_id, message = encrypted(network, rcpts[0])
    relay.stop_milter()
    try:
        status, body = post(relay, stuff(message), rcpts[:1], f"alice@{SENDER}")
    finally:
        relay.start_milter()
    assert status == 400 and body[:1] == b"4", body
    refused_without_trace(relay, rcpts, message_id, (status, body))


def test_with_dns_down_it_is_a_temporary_failure(network, rcpts):
    """The key of a domain never looked up before cannot be fetched: 451, never a 200."""
    relay = network.relay
    message_id = new_message_id(COLD)
    message = dkim_sign(
        sample(ENCRYPTED, f"carol@{COLD}", rcpts[0], message_id),
        COLD,
        OUTSIDE_SELECTOR,
        network.key,
    )
    network.ns.stop()
    try:
        reply = post(relay, stuff(message), rcpts[:1], f"carol@{COLD}")
    finally:
        network.ns.start()
    assert reply == (400, b"451 4.7.5 DKIM key lookup failed, please try again later")
    refused_without_trace(relay, rcpts, message_id, reply)


def test_with_postfix_unreachable_it_is_a_temporary_failure(network, rcpts):
    """chatmail-mxdeliv started with a smtpd port where nothing listens: 451."""
    relay = network.relay
    message_id, message = encrypted(network, rcpts[0])
    relay.mxdeliv.close()
    config = relay.config_path.read_text()
    closed, count = re.subn(r"(?m)^smtpd_port = \d+$", f"smtpd_port = {free_port()}", config)
    assert count == 1
    relay.config_path.write_text(closed)
    try:
        relay.mxdeliv = relay._service("chatmail-mxdeliv").start()
        reply = post(relay, stuff(message), rcpts[:1], f"alice@{SENDER}")
    finally:
        relay.mxdeliv.close()
        relay.config_path.write_text(config)
        relay.mxdeliv = relay._service("chatmail-mxdeliv").start()
    assert reply == (400, b"451 4.3.0 Temporary failure, try again later")
    assert stored(relay, rcpts[0], message_id) == []


def test_with_the_service_down_nginx_answers_a_temporary_failure(network, rcpts):
    relay = network.relay
    _message_id, message = encrypted(network, rcpts[0])
    relay.mxdeliv.close()
    try:
        reply = post(relay, stuff(message), rcpts[:1], f"alice@{SENDER}")
    finally:
        relay.mxdeliv = relay._service("chatmail-mxdeliv").start()
    assert reply == (400, b"451 4.3.0 Temporary failure, try again later")


def test_the_service_logs_no_ip_address_and_addresses_only_at_debug(network, rcpts):
    relay = network.relay
    _message_id, message = encrypted(network, rcpts[0])
    assert post(relay, stuff(message), rcpts[:1], f"alice@{SENDER}") == (200, b"250 OK")
    log = (relay.logs / "chatmail-mxdeliv.log").read_text()
    assert "delivered to 1 recipient(s)" in log
    assert not re.search(r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b", log), log
    for line in log.splitlines():
        if "@" in line:
            assert line.startswith("DEBUG "), line


def test_with_https_off_nginx_answers_404(network, stack_root):
    """[federation] https = no: /mxdeliv is not there (the web face of a relay so configured)."""
    relay = network.relay
    config_text = relay.config_path.read_text().replace(
        "[federation]\n", "[federation]\nhttps = no\n", 1
    )
    path = stack_root / "chatmail.ini"
    path.write_text(config_text)
    path.chmod(0o644)
    front = WebFront(
        stack_root,
        load_config(str(path)),
        address=ADDRESS,
        tls=relay.web.tls,
        http_port=free_port(ADDRESS),
        https_port=free_port(ADDRESS),
    )
    with front:
        status, _headers, body = front.request("POST", "/mxdeliv", b"x\r\n")
    assert status == 404, body
    assert b"250" not in body


@pytest.mark.parametrize(
    "sender",
    [
        "someone@[127.0.0.1]",
        "Someone <someone@[127.0.0.1]>",
        "Someone\r\n <someone@[127.0.0.1]>",  # folded
        "x@[IPv6:::1]",
    ],
)
def test_a_from_address_literal_is_refused(network, rcpts, sender):
    """Postfix sees chatmail-mxdeliv as its client 127.0.0.1, not the sending server, so the
    milter's rule (a From literal must be the client's address) cannot hold: refused."""
    relay = network.relay
    message_id = new_message_id(SENDER)
    message = sample(ENCRYPTED, "placeholder@example.invalid", rcpts[0], message_id)
    head, sep, rest = message.partition(b"\r\n\r\n")
    head = re.sub(rb"(?im)^From:[^\r\n]*", b"From: " + sender.encode(), head)
    assert sender.encode() in head
    reply = post(relay, stuff(head + sep + rest), rcpts[:1], mail_from="")
    assert reply == (400, b"550 5.7.1 From address literal is not the sending server's address")
    refused_without_trace(relay, rcpts, message_id, reply)
