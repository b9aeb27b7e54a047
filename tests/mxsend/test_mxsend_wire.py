"""The request body and envelope fields a sender posts, against mxdeliv's own parser."""

from __future__ import annotations

import pytest
from chatmail_services.mxdeliv.data import InvalidData, check_data, unstuff
from chatmail_services.mxdeliv.envelope import parse_envelope
from chatmail_services.mxsend import wire
from hypothesis import given
from hypothesis import strategies as st

# lines of any bytes but CR and LF, often starting with dots
line = st.one_of(
    st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
    st.sampled_from([b"", b".", b"..", b".x", b". ", b"...."]),
)
message = st.lists(line, min_size=1, max_size=20).map(lambda lines: b"\r\n".join(lines) + b"\r\n")
address = st.from_regex(r"[a-z0-9.!#+=_-]{1,20}@[a-z0-9.-]{1,20}", fullmatch=True)


@given(message)
def test_the_body_is_smtp_data_and_mxdeliv_reads_back_the_message(msg):
    body = wire.request_body(msg)
    check_data(body)  # CRLF, no bare CR or LF, no lone "."
    assert body.endswith(b"\r\n") and not body.endswith(b"\r\n.\r\n")
    assert unstuff(body) == msg


@given(message)
def test_every_line_starting_with_a_dot_is_stuffed(msg):
    body = wire.request_body(msg)
    for original, sent in zip(msg.split(b"\r\n"), body.split(b"\r\n"), strict=True):
        assert sent == (b"." + original if original.startswith(b".") else original)


def test_a_message_without_a_final_crlf_gets_one():
    assert wire.request_body(b"Subject: x\r\n\r\nhi") == b"Subject: x\r\n\r\nhi\r\n"
    assert wire.request_body(b".\r\n.hi") == b"..\r\n..hi\r\n"


def test_bare_line_ends_in_a_message_are_refused_by_the_receiver():
    """What Postfix hands over always has CRLF; a bare LF would be refused, not repaired."""
    with pytest.raises(InvalidData):
        check_data(wire.request_body(b"a\nb\r\n"))


@given(st.one_of(st.just(""), address), st.lists(address, min_size=1, max_size=10))
def test_the_envelope_fields_round_trip_through_mxdeliv(mail_from, rcpts):
    fields = wire.request_headers(mail_from, rcpts)
    assert [v for n, v in fields if n == wire.HEADER_TO] == rcpts  # one field per recipient
    assert (wire.HEADER_FROM in dict(fields)) == bool(mail_from)  # absent for the null sender
    assert {name for name, _ in fields} <= {"x-mail-from", "x-mail-to"}  # as the reference
    envelope = parse_envelope((name.lower(), value) for name, value in fields)
    assert envelope.mail_from == mail_from and list(envelope.rcpts) == rcpts


def test_no_recipients_is_an_error():
    with pytest.raises(ValueError):
        wire.request_headers("a@b.example", [])


@pytest.mark.parametrize(
    ("addr", "ok"),
    [("a@b.example", True), ("", False), ("a b@c", False), ("<a@b>", False), ("ä@b", False)],
)
def test_postable(addr, ok):
    assert wire.postable(addr) is ok
