"""The LMTP server side: the command parser, DATA, and whole sessions over byte streams."""

from __future__ import annotations

import io

import pytest
from chatmail_services.mxdeliv.data import stuff
from chatmail_services.mxsend import lmtp
from hypothesis import given
from hypothesis import strategies as st


@given(st.binary(max_size=200))
def test_any_line_is_a_command_or_a_syntax_reply(line):
    try:
        command = lmtp.parse_command(line)
    except lmtp.LmtpSyntax as exc:
        assert exc.reply[:1] == "5"
    else:
        assert command.verb in {"LHLO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT"}


@given(
    st.from_regex(r"[!-;=?-~]{0,30}", fullmatch=True),
    st.lists(st.from_regex(r"[A-Z]{1,8}(=[!-~]{1,10})?", fullmatch=True), max_size=3),
)
def test_mail_from_address_and_parameters(address, params):
    line = f"MAIL FROM:<{address}>" + "".join(" " + p for p in params)
    command = lmtp.parse_command(line.encode())
    assert command == lmtp.Command("MAIL", address, tuple(params))


@pytest.mark.parametrize(
    "line",
    [b"MAIL FROM:a@b", b"RCPT TO:<>", b"RCPT TO:<a@b>x", b"MAIL FROM:<a b>", b"LHLO", b"HELO x"],
)
def test_malformed_commands(line):
    with pytest.raises(lmtp.LmtpSyntax):
        lmtp.parse_command(line)


lines = st.lists(
    st.one_of(st.sampled_from([b"", b".", b"..", b".x"]), st.binary(max_size=100)).map(
        lambda b: b.replace(b"\r", b"").replace(b"\n", b"")
    ),
    max_size=20,
)


def feed_all(reader: lmtp.DataReader, data: bytes, chunk: int) -> bool:
    """Feed DATA as readline(chunk) would cut it; True once the end was seen."""
    stream = io.BytesIO(data)
    while piece := stream.readline(chunk):
        if reader.feed(piece):
            return True
    return False


@given(lines, st.integers(3, 50))  # readline cuts only long lines: ".\r\n" stays whole
def test_data_is_unstuffed_whatever_the_line_pieces(raw_lines, chunk):
    message = b"".join(line + b"\r\n" for line in raw_lines)
    reader = lmtp.DataReader(limit=10**6)
    assert feed_all(reader, stuff(message) + b".\r\n", chunk)
    assert reader.message() == message and not reader.too_large


def test_data_over_the_limit_is_dropped():
    reader = lmtp.DataReader(limit=10)
    assert feed_all(reader, b"0123456789\r\n.\r\n", 100)
    assert reader.too_large and reader.message() == b""


def session(client: bytes, replies: list[str] | None = None) -> tuple[str, list]:
    seen: list = []

    def deliver(transaction, message):
        seen.append((transaction.mail_from, list(transaction.rcpts), message))
        return replies or ["250 2.0.0 Ok"] * len(transaction.rcpts)

    out = io.BytesIO()
    lmtp.serve_session(io.BytesIO(client), out, "relay.example", 1000, deliver)
    return out.getvalue().decode(), seen


def test_a_session_answers_once_per_recipient_after_data():
    client = (
        b"LHLO postfix\r\nMAIL FROM:<> BODY=8BITMIME\r\nRCPT TO:<a@x.example>\r\n"
        b"RCPT TO:<b@y.example> NOTIFY=NEVER\r\nDATA\r\nS: 1\r\n\r\n..dot\r\n.\r\nQUIT\r\n"
    )
    text, seen = session(client, ["250 2.0.0 one", "451 4.3.0 two"])
    assert seen == [("", ["a@x.example", "b@y.example"], b"S: 1\r\n\r\n.dot\r\n")]
    assert "250 SMTPUTF8" in text and "SIZE 1000" in text and "PIPELINING" not in text
    assert text.endswith("250 2.0.0 one\r\n451 4.3.0 two\r\n221 2.0.0 Bye\r\n")


def test_out_of_order_commands_and_too_large_data():
    text, seen = session(b"MAIL FROM:<a@b>\r\nLHLO x\r\nRCPT TO:<c@d>\r\nDATA\r\n")
    assert text.count("503 5.5.1") == 3 and seen == []
    big = b"x" * 1200 + b"\r\n"
    text, seen = session(b"LHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n" + big + b".\r\n")
    assert text.endswith(lmtp.TOO_LARGE + "\r\n") and seen == []


def test_a_connection_lost_in_data_delivers_nothing():
    text, seen = session(b"LHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\npartial\r\n")
    assert seen == [] and text.endswith("354 End data with <CR><LF>.<CR><LF>\r\n")
