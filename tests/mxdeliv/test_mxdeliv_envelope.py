"""The envelope of /mxdeliv from its header fields (mxdeliv/envelope.py), and the answers
(mxdeliv/replies.py, mxdeliv/app.py) for every outcome, with hypothesis where there is input."""

from __future__ import annotations

import pytest
from chatmail_services.mxdeliv import app
from chatmail_services.mxdeliv.envelope import (
    BAD_RECIPIENT,
    BAD_SENDER,
    NO_RECIPIENT,
    TWO_SENDERS,
    BadEnvelope,
    Envelope,
    parse_envelope,
    valid_address,
)
from chatmail_services.mxdeliv.replies import Reply, answer
from chatmail_services.web.http import parse_head
from hypothesis import given
from hypothesis import strategies as st

local = st.text("abcdefghijklmnopqrstuvwxyz0123456789._+-", min_size=1, max_size=20)
domain = st.from_regex(r"[a-z0-9]{1,10}(\.[a-z0-9]{1,10}){0,2}", fullmatch=True)
address = st.builds(lambda lp, d: f"{lp}@{d}", local, domain)
names = st.sampled_from(["x-mail-to", "X-Mail-To", "X-MAIL-TO", "x-MaIl-To"])


def head(fields: list[tuple[str, str]], method: str = "POST") -> bytes:
    lines = [f"{method} /mxdeliv HTTP/1.1", "Host: localhost"]
    lines += [f"{name}: {value}" for name, value in fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@given(st.none() | address, st.lists(st.tuples(names, address), min_size=1, max_size=30))
def test_the_envelope_as_the_sender_posts_it(sender, rcpts):
    """Header names in any case; one X-Mail-To per recipient, order kept; no X-Mail-From for
    the null sender."""
    fields = [("x-mail-from", sender)] if sender else []
    request = parse_head(head(fields + rcpts), 64 * 1024, 2048)
    envelope = parse_envelope(request.fields)
    assert envelope == Envelope(sender or "", tuple(rcpt for _name, rcpt in rcpts))


@given(st.text(max_size=40))
def test_any_value_is_an_address_or_a_clear_refusal(value):
    try:
        envelope = parse_envelope([("x-mail-to", value)])
    except BadEnvelope as exc:
        assert exc.reply in (BAD_RECIPIENT, NO_RECIPIENT)
    else:
        assert valid_address(envelope.rcpts[0])


@pytest.mark.parametrize(
    ("fields", "reply"),
    [
        ([("x-mail-from", "a@b"), ("x-mail-from", "c@d"), ("x-mail-to", "e@f")], TWO_SENDERS),
        ([("x-mail-from", "a@b")], NO_RECIPIENT),
        ([], NO_RECIPIENT),
        ([("x-mail-from", "<a@b>"), ("x-mail-to", "e@f")], BAD_SENDER),
        ([("x-mail-from", "a b@c"), ("x-mail-to", "e@f")], BAD_SENDER),
        ([("x-mail-to", "e@f"), ("x-mail-to", "<g@h>")], BAD_RECIPIENT),
        ([("x-mail-to", "e@f, g@h")], BAD_RECIPIENT),  # comma-joined: refused, never split
        ([("x-mail-to", "nobody")], BAD_RECIPIENT),
        ([("x-mail-to", "a@" + "b" * 320)], BAD_RECIPIENT),
        ([("x-mail-to", "é@f")], BAD_RECIPIENT),
    ],
)
def test_envelopes_that_do_not_fit(fields, reply):
    with pytest.raises(BadEnvelope) as info:
        parse_envelope(fields)
    assert info.value.reply == reply


@given(st.integers(min_value=0, max_value=999), st.text(max_size=60))
def test_only_a_2xx_reply_is_a_200_and_never_any_other(code, text):
    response = answer(Reply(code, text))
    if 200 <= code < 300:
        assert (response.status, response.body) == (200, b"250 OK")
    else:
        assert response.status == 400
        body = response.body.decode("ascii")
        assert "\n" not in body and "\r" not in body
        assert body[0] in "45", body  # a refusal, or a temporary failure when unknown
        if 400 <= code < 600:
            assert body.startswith(f"{code}")


SETTINGS = app.Settings(max_message_size=1000, smtpd_host="127.0.0.1", smtpd_port=1)
GOOD = head([("x-mail-from", "a@b.example"), ("x-mail-to", "c@d.example")])


def _never(envelope, message):
    raise AssertionError("must not be handed to Postfix")


@pytest.mark.parametrize(
    ("method", "body", "status", "text"),
    [
        ("GET", b"", 405, b"Method Not Allowed"),
        ("PUT", b"x\r\n", 405, b"Method Not Allowed"),
        ("POST", b"x" * 1001 + b"\r\n", 413, b"552 Message exceeds maximum size"),
        ("POST", b"a\nb\r\n", 400, b"500 Invalid DATA"),
        ("POST", b"a\r\n.\r\n", 400, b"500 Invalid DATA"),
        ("POST", b"no end", 400, b"500 Invalid DATA"),
    ],
)
def test_refused_before_postfix_is_asked(method, body, status, text):
    request = parse_head(GOOD.replace(b"POST", method.encode(), 1))
    response = app.respond(request, body, SETTINGS, _never)
    assert (response.status, response.body) == (status, text)
    if status == 405:
        assert response.headers == {"Allow": "POST"}


def test_postfix_gets_the_unstuffed_message_and_its_reply_is_the_answer():
    seen = []

    def deliver(envelope, message):
        seen.append((envelope, message))
        return Reply(554, "5.7.1 No DKIM signature found")

    response = app.respond(parse_head(GOOD), b"..x\r\n", SETTINGS, deliver)
    assert seen == [(Envelope("a@b.example", ("c@d.example",)), b".x\r\n")]
    assert (response.status, response.body) == (400, b"554 5.7.1 No DKIM signature found")


@given(st.ip_addresses().map(str), address)
def test_no_ip_address_reaches_the_debug_log(ip, rcpt):
    """A recipient address literal, and Postfix's reply naming it, are logged without the IP."""
    literal = f"someone@[{ip}]"
    text = app.loggable(Envelope(rcpt, (literal, rcpt))) + app.loggable(
        f"554 5.7.1 <{literal}>: Relay access denied"
    )
    assert ip not in text
    assert rcpt in text
