"""The DATA body parser of /mxdeliv (mxdeliv/data.py): property tests against dot-stuffers."""

from __future__ import annotations

import re
import smtplib

import pytest
from chatmail_services.mxdeliv.data import InvalidData, check_data, stuff, unstuff
from hypothesis import assume, given
from hypothesis import strategies as st

# a line of a message: any bytes but CR and LF, leading dots likely
line = st.one_of(
    st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
    st.sampled_from([b"", b".", b"..", b".x", b"..x", b"x.", b" .", b"\x00", b"\xff"]),
)
messages = st.lists(line, min_size=1, max_size=20).map(
    lambda lines: b"".join(x + b"\r\n" for x in lines)
)


REASONS = {"the body does not end in CRLF", "a bare CR or LF", "a line that is a lone '.'"}


def stuff_by_lines(message: bytes) -> bytes:
    """The sender's dot-stuffing, line by line (RFC 5321 4.5.2)."""
    lines = message.split(b"\r\n")[:-1]
    return b"".join((b"." + x if x.startswith(b".") else x) + b"\r\n" for x in lines)


def smtplib_stuff(message: bytes) -> bytes:
    """Python's SMTP client's dot-stuffing (what `SMTP.data` sends, without the final dot)."""
    return re.sub(rb"(?m)^\.", b"..", message)


@given(messages)
def test_round_trip_against_a_dot_stuffer(message):
    assert unstuff(stuff_by_lines(message)) == message


@given(messages)
def test_the_senders_stuffer_is_the_line_based_one_and_unstuff_undoes_it(message):
    assert stuff(message) == stuff_by_lines(message)
    assert unstuff(stuff(message)) == message


@given(messages)
def test_round_trip_against_smtplibs_dot_stuffer(message):
    assert smtplib_stuff(message) == stuff_by_lines(message)
    assert unstuff(smtplib_stuff(message)) == message
    # what Postfix then receives: smtplib stuffs the un-stuffed message back
    assert smtplib._quote_periods(unstuff(stuff_by_lines(message))) == stuff_by_lines(message)


def unstuff_by_lines(body: bytes) -> bytes:
    """A second, line-based reading of valid DATA: each line's first '.' removed."""
    lines = body.split(b"\r\n")[:-1]
    return b"".join((x[1:] if x.startswith(b".") else x) + b"\r\n" for x in lines)


@given(messages)
def test_valid_data_is_read_as_a_line_based_reader_does(body):
    """Any valid body (also with single dots a stuffer never makes) reads as SMTP does."""
    assume(not body.startswith(b".\r\n") and b"\r\n.\r\n" not in body)
    assert unstuff(body) == unstuff_by_lines(body)


@given(messages, st.integers(min_value=0), st.sampled_from([b"\r", b"\n"]))
def test_a_bare_cr_or_lf_anywhere_is_refused(message, where, bare):
    body = stuff_by_lines(message)
    at = where % (len(body) + 1)
    # a CR right before an LF (or an LF right after a CR) would make a pair: an x beside it
    lone = b"\rx" if bare == b"\r" else b"x\n"
    broken = body[:at] + lone + body[at:]
    with pytest.raises(InvalidData):
        unstuff(broken)


@given(messages, st.binary(min_size=1, max_size=5).filter(lambda b: not b.endswith(b"\r\n")))
def test_a_body_not_ending_in_crlf_is_refused(message, tail):
    with pytest.raises(InvalidData):
        unstuff(stuff_by_lines(message) + tail.replace(b"\r", b"").replace(b"\n", b"") + b"x")


@given(st.just(b"") | messages, st.just(b"") | messages)
def test_an_unescaped_lone_dot_line_is_refused(before, after):
    """`CRLF.CRLF` inside (the end of DATA) or `.CRLF` at the start, and the final `.CRLF`."""
    with pytest.raises(InvalidData):
        unstuff(stuff_by_lines(before) + b".\r\n" + stuff_by_lines(after))


@pytest.mark.parametrize(
    "body",
    [b"", b"x", b"x\r", b"x\n", b"a\nb\r\n", b"a\rb\r\n", b".\r\n", b"a\r\n.\r\n", b"\r\r\n"],
)
def test_malformed_examples(body):
    with pytest.raises(InvalidData):
        check_data(body)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\r\n", b"\r\n"),
        (b"..\r\n", b".\r\n"),
        (b"a\r\n..\r\nb\r\n", b"a\r\n.\r\nb\r\n"),
        (b"...x\r\n", b"..x\r\n"),
        (b".x\r\n", b"x\r\n"),  # a single leading dot is removed, as any SMTP server does
    ],
)
def test_examples(body, message):
    assert unstuff(body) == message


@given(st.binary(max_size=200))
def test_any_bytes_give_a_message_or_invalid_data_never_another_error(body):
    try:
        message = unstuff(body)
    except InvalidData as exc:  # one of the parser's own reasons, none of the body's bytes
        assert str(exc) in REASONS
    else:
        assert message.endswith(b"\r\n") and len(message) <= len(body)
