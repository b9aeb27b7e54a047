"""The libmilter adapter through pymilter's test context (harness.milterctx.MilterCtx)."""

from __future__ import annotations

import functools
import io
import ipaddress
import logging
import mmap
import socket

import Milter
import pytest
from chatmail_services.milter.adapter import ChatmailMilter, Service, client_address
from chatmail_services.milter.ratelimit import RateLimiter
from harness.messages import ALICE, BOB, SWAKS_SAMPLE
from harness.milterctx import MilterCtx
from hypothesis import given
from hypothesis import strategies as st


def make_service(**overrides) -> Service:
    values = {
        "limiter": RateLimiter(60, 10),
        "enforces_encryption": lambda rcpt: True,
        "max_message_size": 31457280,
        "spool_threshold": 1 << 20,
        "spool_dir": None,
    }
    values.update(overrides)
    return Service(**values)


def split_headers(data: bytes) -> tuple[list[tuple[str, str]], bytes]:
    """Headers as Postfix hands them to a milter (folds kept as LF), and the CRLF body."""
    head, _, body = data.partition(b"\r\n\r\n")
    headers: list[tuple[str, str]] = []
    for line in head.decode().split("\r\n"):
        if line[:1] in (" ", "\t"):
            name, value = headers[-1]
            headers[-1] = (name, value + "\n" + line)
        else:
            name, _, value = line.partition(":")
            headers.append((name, value.lstrip(" ")))
    return headers, body


class Session:
    """One SMTP connection to the milter through TestCtx."""

    def __init__(self, service: Service, login: str | None = ALICE) -> None:
        Milter.factory = functools.partial(ChatmailMilter, service)
        self.ctx = MilterCtx()
        if login is not None:
            self.ctx._setsymval("{auth_authen}", login)
        self.ctx._setsymval("i", "4XyZ123")
        assert self.ctx._connect() == Milter.CONTINUE
        self.milter: ChatmailMilter = self.ctx.getpriv()

    def send(self, data: bytes, sender: str = ALICE, rcpts=(BOB,), stop_before_eom=False):
        self.ctx._reply = None
        rc = self.ctx._envfrom(f"<{sender}>")
        if rc != Milter.CONTINUE:
            return rc
        # RCPT and headers are @noreply: Postfix does not wait for (or read) an answer
        for rcpt in rcpts:
            assert self.ctx._envrcpt(f"<{rcpt}>") == Milter.NOREPLY
        headers, body = split_headers(data)
        for name, value in headers:
            assert self.ctx._header(name, value) == Milter.NOREPLY
        assert self.ctx._eoh() == Milter.CONTINUE
        rc = self.ctx._feed_body(io.BytesIO(body))
        if rc != Milter.CONTINUE or stop_before_eom:
            return rc
        return self.ctx._eom()

    @property
    def reply(self):
        return self.ctx._reply


def test_negotiates_away_every_step_it_does_not_use():
    Milter.factory = functools.partial(ChatmailMilter, make_service())
    ctx = MilterCtx()
    ctx._connect()
    protocol = ctx.getpriv()._protocol
    for step in ("P_NOHELO", "P_NODATA", "P_NOEOH", "P_NOUNKNOWN"):
        assert protocol & getattr(Milter, step), step
    for step in ("P_NOCONNECT", "P_NOMAIL", "P_NORCPT", "P_NOHDRS", "P_NOBODY"):
        assert not protocol & getattr(Milter, step), step
    for step in ("P_NR_CONN", "P_NR_RCPT", "P_NR_HDR"):  # Postfix does not wait for these
        assert protocol & getattr(Milter, step), step


@pytest.mark.parametrize(
    ("family", "hostaddr", "expected"),
    [
        (socket.AF_INET, ("192.0.2.1", 4711), "192.0.2.1"),
        (socket.AF_INET6, ("2001:db8::1", 4711, 0, 0), "2001:db8::1"),
        (socket.AF_INET6, ("IPv6:2001:DB8::1", 4711, 0, 0), "2001:db8::1"),
        (socket.AF_INET6, ("fe80::1%eth0", 4711, 0, 2), "fe80::1"),
        (socket.AF_INET, "192.0.2.1", "192.0.2.1"),  # pymilter's own TestCtx passes the text
        (socket.AF_UNIX, "/run/x.sock", None),
        (socket.AF_INET, ("not an address", 1), None),
        (socket.AF_INET, None, None),
        (socket.AF_INET, (), None),
    ],
)
def test_client_address_from_the_connect_callback(family, hostaddr, expected):
    found = client_address(family, hostaddr)
    assert found == (None if expected is None else ipaddress.ip_address(expected))


@given(st.ip_addresses(), st.integers(0, 65535))
def test_every_client_address_libmilter_reports_is_read(ip, port):
    family, hostaddr = (
        (socket.AF_INET, (str(ip), port))
        if ip.version == 4
        else (socket.AF_INET6, (str(ip), port, 0, 0))
    )
    assert client_address(family, hostaddr) == ip


@given(
    st.sampled_from([socket.AF_INET, socket.AF_INET6, socket.AF_UNIX, 0]),
    st.one_of(st.none(), st.text(max_size=50), st.tuples(st.text(max_size=50), st.integers())),
)
def test_client_address_of_anything_is_an_address_or_none(family, hostaddr):
    found = client_address(family, hostaddr)
    assert found is None or isinstance(found, (ipaddress.IPv4Address, ipaddress.IPv6Address))


def test_samples_accepted_and_cleartext_refused_with_523(samples):
    session = Session(make_service())
    for sample in samples.values():
        session.ctx._setsymval("{auth_authen}", sample.sender)
        rc = session.send(sample.data, sample.sender, (sample.rcpt,))
        if sample.name == SWAKS_SAMPLE:
            assert rc == Milter.REJECT
            assert session.reply == ("523", "5.7.10", "Encryption Needed: Invalid Unencrypted Mail")
        else:
            assert rc == Milter.ACCEPT, sample.name
            assert session.reply is None
            assert not session.ctx._envfromchanged  # outgoing mail is never changed
            assert not session.ctx._headerschanged


def test_rate_limit_answers_450_at_mail_from(build):
    session = Session(make_service(limiter=RateLimiter(60, 3)))
    message = build.secure_join_message()
    assert [session.send(message) for _ in range(3)] == [Milter.ACCEPT] * 3
    assert session.send(message) == Milter.TEMPFAIL
    assert session.reply == ("450", "4.7.1", f"Too much mail from <{ALICE}>")


def test_rate_limit_reply_text_escapes_percent():
    session = Session(make_service(limiter=RateLimiter(60, 1)), login="a%b@chat.example")
    session.send(b"From: <a%b@chat.example>\r\n\r\nx\r\n", sender="a%b@chat.example")
    assert session.send(b"x", sender="a%b@chat.example") == Milter.TEMPFAIL
    assert session.reply == ("450", "4.7.1", "Too much mail from <a%%b@chat.example>")


def test_sender_not_login_refused_at_mail_from(build):
    session = Session(make_service(), login=BOB)
    assert session.send(build.secure_join_message()) == Milter.REJECT
    assert session.reply == ("550", "5.7.1", "Sender address does not match login")


def test_from_header_mismatch_refused_550(build):
    session = Session(make_service())
    message = build.secure_join_message(sender=BOB)
    assert session.send(message) == Milter.REJECT
    assert session.reply == ("550", "5.7.1", "From header does not match sender")


def accept_reasons(caplog) -> list[str]:
    """The rules that accepted, from the adapter's debug lines `<queue id>: accept: <reason>`."""
    lines = [r.getMessage() for r in caplog.records if r.name == "chatmail.milter"]
    return [line.split(": accept: ", 1)[1] for line in lines if ": accept: " in line]


def test_incoming_cleartext_refused_and_forged_sender_reset(samples, build, caplog):
    session = Session(make_service(), login=None)
    assert session.send(build.plain_message(sender="x@other.example"), "x@other.example") == (
        Milter.REJECT
    )
    assert session.reply[0] == "523"
    sample = samples["chat-text-alice-to-bob"]
    with caplog.at_level(logging.DEBUG, logger="chatmail.milter"):
        assert session.send(sample.data, "bounce@lists.example", (sample.rcpt,)) == Milter.ACCEPT
    assert accept_reasons(caplog) == ["encrypted; envelope sender reset"]
    assert session.ctx._envfromchanged
    assert session.ctx._sender == "<>"


def test_incoming_cleartext_to_non_enforcing_recipient_accepted(build, caplog):
    session = Session(make_service(enforces_encryption=lambda rcpt: False), login=None)
    with caplog.at_level(logging.DEBUG, logger="chatmail.milter"):
        assert session.send(build.plain_message(sender="x@other.example"), "x@other.example") == (
            Milter.ACCEPT
        )
    assert accept_reasons(caplog) == ["cleartext to recipients not enforcing encryption"]


def test_oversized_message_refused_552_while_body_arrives(samples):
    sample = samples["attachment-post-message-300k-5octet-SEIPD"]
    session = Session(make_service(max_message_size=100_000, spool_threshold=10_000))
    session.ctx._setsymval("{auth_authen}", sample.sender)
    rc = session.send(sample.data, sample.sender, (sample.rcpt,), stop_before_eom=True)
    assert rc == Milter.REJECT
    assert session.reply == ("552", "5.3.4", "Message size exceeds fixed limit")
    assert 100_000 < session.milter.size <= 100_000 + 8192  # stopped at the first chunk over


def test_large_message_is_spooled_to_a_file_and_accepted(samples, tmp_path):
    sample = samples["attachment-post-message-300k-5octet-SEIPD"]
    session = Session(make_service(spool_threshold=50_000, spool_dir=str(tmp_path)))
    session.ctx._setsymval("{auth_authen}", sample.sender)
    rc = session.send(sample.data, sample.sender, (sample.rcpt,), stop_before_eom=True)
    assert rc == Milter.CONTINUE
    assert isinstance(session.milter.spool.view(), mmap.mmap)  # spooled to a file
    assert session.ctx._eom() == Milter.ACCEPT
    assert session.milter.spool is None
    assert list(tmp_path.iterdir()) == []


def test_internal_error_is_451_with_traceback_never_accept(build, caplog):
    def broken(rcpt: str) -> bool:
        raise PermissionError("marker unreadable")

    session = Session(make_service(enforces_encryption=broken), login=None)
    with caplog.at_level(logging.INFO, logger="chatmail.milter"):
        rc = session.send(build.plain_message(sender="x@other.example"), "x@other.example")
    assert rc == Milter.TEMPFAIL
    assert session.reply == ("451", "4.3.0", "Internal error, please try again later")
    assert "Traceback" in caplog.text and "marker unreadable" in caplog.text


def test_unusable_spool_dir_is_451(samples, tmp_path):
    sample = samples["attachment-post-message-300k-5octet-SEIPD"]
    service = make_service(spool_threshold=1000, spool_dir=str(tmp_path / "missing"))
    session = Session(service)
    session.ctx._setsymval("{auth_authen}", sample.sender)
    assert session.send(sample.data, sample.sender, (sample.rcpt,)) == Milter.TEMPFAIL
    assert session.reply[:2] == ("451", "4.3.0")


def test_one_log_line_per_rejection_without_addresses(build, caplog):
    session = Session(make_service())
    with caplog.at_level(logging.INFO, logger="chatmail.milter"):
        session.send(build.plain_message())
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert lines == [
        "4XyZ123: reject 523 5.7.10: outgoing cleartext: top level is text/plain,"
        " not multipart/encrypted"
    ]
    assert "@" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="chatmail.milter"):
        session.send(build.plain_message())
    assert ALICE in caplog.text  # addresses only at debug


def test_state_is_reset_between_messages_of_one_connection(samples, build):
    session = Session(make_service())
    sample = samples["chat-text-alice-to-bob"]
    session.ctx._setsymval("{auth_authen}", sample.sender)
    assert session.send(sample.data, sample.sender, (sample.rcpt,)) == Milter.ACCEPT
    assert session.send(build.plain_message(sender=sample.sender), sample.sender) == Milter.REJECT
    assert session.send(sample.data, sample.sender, (sample.rcpt,)) == Milter.ACCEPT
    session.ctx._abort()


@pytest.mark.parametrize("value", ["multipart/encrypted", "text/plain"])
def test_adapter_and_check_agree(samples, value):
    """The adapter reconstructs the same message the policy sees from the file."""
    from chatmail_services.milter import mime, policy

    name = "chat-text-alice-to-bob" if value == "multipart/encrypted" else SWAKS_SAMPLE
    sample = samples[name]
    session = Session(make_service())
    session.ctx._setsymval("{auth_authen}", sample.sender)
    rc = session.send(sample.data, sample.sender, (sample.rcpt,))
    env = policy.Envelope(sample.sender, (sample.rcpt,), sample.sender)
    verdict = policy.decide(mime.parse_message(sample.data), env, lambda r: True)
    assert (rc == Milter.ACCEPT) == verdict.accepted


def test_error_in_a_noreply_callback_is_451_at_the_next_reply(build, monkeypatch, caplog):
    from chatmail_services.milter import adapter

    original = adapter._text

    def fragile(value):
        if b"boom" in (value if isinstance(value, bytes) else value.encode()):
            raise ValueError("header exploded")
        return original(value)

    monkeypatch.setattr(adapter, "_text", fragile)
    session = Session(make_service())
    message = build.secure_join_message().replace(b"Chat-Version: 1.0", b"X-Test: boom")
    with caplog.at_level(logging.ERROR, logger="chatmail.milter"):
        assert session.send(message) == Milter.TEMPFAIL
    assert session.reply == ("451", "4.3.0", "Internal error, please try again later")
    assert "header exploded" in caplog.text
    assert session.send(build.secure_join_message()) == Milter.ACCEPT  # next message is fine


def test_oversized_headers_with_empty_body_refused_552(build):
    session = Session(make_service(max_message_size=2000))
    message = b"From: <" + ALICE.encode() + b">\r\nX-Big: " + b"a" * 3000 + b"\r\n\r\n"
    assert session.send(message) == Milter.REJECT
    assert session.reply == ("552", "5.3.4", "Message size exceeds fixed limit")
