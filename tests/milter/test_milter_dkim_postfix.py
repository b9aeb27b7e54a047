"""DKIM with real Postfix (rendered from the templates), the real milter as its unit runs
it, Dovecot for delivery and nsd serving the key records on loopback.

Checks the role detection as Postfix really reports it: a submission leaves signed and its
signature verifies on the message as delivered; a bounce Postfix generates itself reaches the
milter as non-SMTP mail (`{daemon_name}` = chatmail-internal) and leaves signed; port-25 mail
needs a valid signature of its From domain that signs From; mail posted with sendmail is not
"internal". Delivery to Dovecot strips DKIM-Signature and Authentication-Results, so the
signature the relay made is read from the milter's debug log and put back on top of the
stored file to verify it.
"""

from __future__ import annotations

import shutil
import smtplib
import subprocess
import time
from pathlib import Path

import dkim
import pytest
from chatmail_services.dnszone.records import Record
from chatmail_services.dnszone.zonefile import record_line
from harness.fixtures import session_dkim_key
from harness.maillog import message_id_of, signature_logged
from harness.messages import dkim_sign
from harness.milterstack import ALICE, BOB, CAROL, DOMAIN, MilterStack
from harness.nameserver import NameServer
from harness.net import free_port

from chatmail_services import dkimkey

pytestmark = pytest.mark.stack

NS_ADDRESS = "127.53.9.2"
REMOTE = "other.example"
NOBODY = f"nobody123@{DOMAIN}"  # no such account: Dovecot's LMTP refuses it, Postfix bounces


def key_record() -> str:
    """The TXT value of the session's test key (the key write_test_config installs)."""
    return dkimkey.dkim_record_value(dkimkey.public_key_b64_of_pem(session_dkim_key()))


def zone_line(selector: str, domain: str) -> str:
    """The record as `chatmail-milter dkim-keygen` prints it (strings of <= 255 bytes)."""
    name = f"{selector}._domainkey.{domain}."
    return record_line(Record(name, "TXT", key_record(), True)) + "\n"


def dnsfunc(name: bytes, timeout: float = 5) -> bytes:
    """The public key for dkimpy's own verification of delivered files (independent of ours)."""
    assert name in (b"chatmail._domainkey.chat.example.", b"remote._domainkey.other.example."), name
    return key_record().encode()


class Stack(MilterStack):
    """The milter stack with nsd serving the key records and DKIM verification on."""

    def __init__(self, root: Path) -> None:
        self.ns = NameServer(
            root,
            NS_ADDRESS,
            {DOMAIN: zone_line("chatmail", DOMAIN), REMOTE: zone_line("remote", REMOTE)},
            port=free_port(NS_ADDRESS),  # the module may run twice at once (other checkouts)
        )
        super().__init__(
            root,
            dkim={"resolver": f"{NS_ADDRESS}:{self.ns.port}", "dns_timeout": 3},
            chatmail={"log_level": "debug"},  # the signatures it adds (delivery strips them)
        )

    def signature(self, stored: bytes) -> bytes:
        """The DKIM-Signature the milter added to this stored message (its debug line)."""
        field = signature_logged(self.postfix.log_text(), self.log(), message_id_of(stored))
        assert field is not None, self.log()[-3000:]
        return field


@pytest.fixture(scope="module")
def stack():
    from harness import stack_dir

    stack = Stack(stack_dir("chatmail-milter-dkim-"))
    with stack.ns:
        stack.milter.start()
        try:
            with stack.dovecot, stack.postfix:
                yield stack
        finally:
            stack.milter.close()
    shutil.rmtree(stack.root, ignore_errors=True)


def alice_message(build, gpg, text: str, to: str = BOB) -> bytes:
    armored = gpg.encrypt(text).replace("\n", "\r\n")
    return build.encrypted_message(
        armored,
        sender=ALICE,
        extra_headers=f"Autocrypt: addr={ALICE}; prefer-encrypt=mutual; keydata=AAAA\r\n",
    ).replace(b'To: "hidden-recipients": ;', f"To: <{to}>".encode())


def signatures(data: bytes) -> list[dict[bytes, bytes]]:
    return [
        dkim.util.parse_tag_value(value)
        for name, value in dkim.rfc822_parse(data)[0]
        if name.lower() == b"dkim-signature"
    ]


REMOTE_HEADERS = (
    "Date: Sat, 21 Nov 2026 05:41:21 +0000\r\nMessage-ID: <r1@other.example>\r\n"
    "X-Folded: one\r\n\ttwo  three\r\n"
)


def head(stored: bytes) -> bytes:
    return stored.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]


def test_submitted_mail_is_signed_and_stored_without_the_signature(stack, build, gpg):
    before = stack.count(BOB)
    stack.submit(ALICE, [BOB], alice_message(build, gpg, "signed delivery"))
    delivered = stack.delivered(BOB, before + 1)[-1]
    assert signatures(delivered) == [] and b"dkim-signature" not in head(delivered).lower()
    field = stack.signature(delivered)
    [tags] = signatures(field + delivered)
    assert (tags[b"d"], tags[b"s"], tags[b"c"]) == (b"chat.example", b"chatmail", b"relaxed/simple")
    assert b"autocrypt" in tags[b"h"]
    assert tags[b"bh"] not in delivered  # no continuation line of the field was left behind
    # dkimpy's own verification of the stored file with the signature on top (Return-Path and
    # Delivered-To added on delivery are not signed): the message the milter signed is the
    # message stored, everything Postfix did after the milter kept the signature valid
    assert dkim.verify(field + delivered, dnsfunc=dnsfunc), delivered[:2000]
    assert not dkim.verify(field + delivered.replace(b"[...]", b"[..]"), dnsfunc=dnsfunc)
    # the header the milter added is the topmost one the milter can reach
    assert b"Subject: [...]" in delivered


def test_postfix_bounce_reaches_the_milter_and_leaves_signed(stack, build, gpg):
    before = stack.count(ALICE)
    stack.submit(ALICE, [NOBODY], alice_message(build, gpg, "to nobody", to=NOBODY))
    bounce = stack.delivered(ALICE, before + 1)[-1]
    assert b"From: Mail Delivery System <MAILER-DAEMON@chat.example>" in bounce
    assert b"Return-Path: <>" in bounce
    assert signatures(bounce) == []
    field = stack.signature(bounce)
    [tags] = signatures(field + bounce)
    assert tags[b"d"] == b"chat.example"
    assert dkim.verify(field + bounce, dnsfunc=dnsfunc)


def test_incoming_without_signature_gets_554(stack, build):
    with pytest.raises(smtplib.SMTPDataError) as info:
        stack.deliver(f"x@{REMOTE}", [CAROL], build.plain_message(f"x@{REMOTE}", CAROL))
    assert (info.value.smtp_code, info.value.smtp_error) == (
        554,
        b"5.7.1 No DKIM signature found",
    )
    assert "reject 554 5.7.1: no DKIM signature" in stack.log()


def test_port_25_null_sender_bounce_lookalike_is_not_internal(stack):
    fake = (
        b"From: MAILER-DAEMON@chat.example (Mail Delivery System)\r\nTo: <" + CAROL.encode() + b">"
        b"\r\nSubject: Undelivered Mail\r\nAuto-Submitted: auto-replied\r\n\r\nhi\r\n"
    )
    with pytest.raises(smtplib.SMTPDataError) as info:
        stack.deliver("", [CAROL], fake)
    assert info.value.smtp_code == 554


def test_incoming_signed_by_the_from_domain_is_stored_unchanged_but_for_dkim_headers(stack, build):
    """What the sender signed is stored byte for byte, without the signature and without any
    Authentication-Results (a forged one here: the sender can write anything there)."""
    from chatmail_services.milter.dkimsign import Signer

    remote = Signer("remote", REMOTE, session_dkim_key())
    # Date and Message-ID present: Postfix would add them, and an added Date breaks any
    # signature that over-signs it (as ours and OpenDKIM's do)
    plain = build.plain_message(f"x@{REMOTE}", CAROL, extra=REMOTE_HEADERS)
    field = b"DKIM-Signature:" + remote.sign(plain).replace(b"\n", b"\r\n") + b"\r\n"
    results = b"Authentication-Results: chat.example;\r\n dkim=pass header.d=chat.example\r\n"
    data = field + results + plain
    before = stack.count(CAROL)
    stack.deliver(f"x@{REMOTE}", [CAROL], data)
    delivered = stack.delivered(CAROL, before + 1)[-1]
    assert signatures(delivered) == []  # the sender's is gone, and we do not sign incoming
    assert b"authentication-results" not in head(delivered).lower()
    assert b"header.d=chat.example" not in delivered  # nor its continuation line
    assert plain.replace(b"\r\n", b"\n") in delivered.replace(b"\r\n", b"\n")
    assert dkim.verify(field + delivered, dnsfunc=dnsfunc)
    # incoming mail is never signed by us
    assert signature_logged(stack.postfix.log_text(), stack.log(), message_id_of(delivered)) is None
    tampered = data.replace(b"\r\nhi\r\n", b"\r\nho\r\n")
    with pytest.raises(smtplib.SMTPDataError) as info:
        stack.deliver(f"x@{REMOTE}", [CAROL], tampered)
    assert info.value.smtp_error == b"5.7.1 No valid DKIM signature found"


def test_header_fields_reach_the_verifier_byte_exact(stack, build):
    """simple/simple canonicalization: any change of spacing or folding breaks the signature,
    so this passes only if the milter rebuilds the header fields exactly (P_HDR_LEADSPC)."""
    plain = build.plain_message(
        f"x@{REMOTE}", CAROL, extra=REMOTE_HEADERS + "X-Space:  two\r\nX-None:none\r\n"
    )
    field = dkim.sign(
        plain,
        b"remote",
        REMOTE.encode(),
        session_dkim_key(),
        canonicalize=(b"simple", b"simple"),
        include_headers=[b"from", b"to", b"subject", b"date", b"x-folded", b"x-space", b"x-none"],
    )
    before = stack.count(CAROL)
    stack.deliver(f"x@{REMOTE}", [CAROL], field + plain)
    assert len(stack.delivered(CAROL, before + 1)) == before + 1


def test_key_lookup_failure_is_a_temporary_failure(stack, build):
    from chatmail_services.milter.dkimsign import Signer

    unknown = Signer("remote", "nozone.example", session_dkim_key())  # nsd: REFUSED
    sender = "x@nozone.example"
    plain = build.plain_message(sender, CAROL)
    data = b"DKIM-Signature:" + unknown.sign(plain).replace(b"\n", b"\r\n") + b"\r\n" + plain
    with pytest.raises(smtplib.SMTPDataError) as info:
        stack.deliver(sender, [CAROL], data)
    assert info.value.smtp_code == 451
    assert info.value.smtp_error.startswith(b"4.7.5 ")


def test_mail_posted_with_sendmail_is_not_treated_as_internal(stack):
    """pickup hands mail to its own cleanup service, without the chatmail-internal name."""
    message = (
        b"From: MAILER-DAEMON@chat.example\r\nTo: <" + CAROL.encode() + b">\r\n"
        b"Subject: posted locally\r\n\r\ncleartext\r\n"
    )
    before = stack.log().count("reject 554 5.7.1")
    result = subprocess.run(
        ["sendmail", "-C", str(stack.postfix.dir), "-f", "", "-i", CAROL],
        input=message,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    deadline = time.monotonic() + 30
    while stack.log().count("reject 554 5.7.1") == before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert stack.log().count("reject 554 5.7.1") == before + 1, stack.postfix.log_text()[-2000:]


def signed_over(build, headers: tuple[bytes, ...], selector="remote", domain=REMOTE) -> bytes:
    """A cleartext message from x@domain to CAROL signed (valid, key in nsd) over `headers`."""
    plain = build.plain_message(f"x@{domain}", CAROL, extra=REMOTE_HEADERS)
    return dkim_sign(plain, domain, selector, session_dkim_key(), headers)


def test_a_valid_signature_that_does_not_sign_from_is_554(stack, build):
    """RFC 6376 6.1.1: such a signature says nothing about From (anyone could put any From of
    the domain above a message the domain signed): it is ignored."""
    data = signed_over(build, (b"subject", b"to", b"date", b"message-id"))
    assert dkim.verify(data, dnsfunc=dnsfunc)  # valid as a signature
    with pytest.raises(smtplib.SMTPDataError) as info:
        stack.deliver(f"x@{REMOTE}", [CAROL], data)
    assert (info.value.smtp_code, info.value.smtp_error) == (
        554,
        b"5.7.1 No valid DKIM signature found",
    )
    before = stack.count(CAROL)  # the control: the same signature over From as well passes
    stack.deliver(f"x@{REMOTE}", [CAROL], signed_over(build, (b"from", b"subject", b"to")))
    assert len(stack.delivered(CAROL, before + 1)) == before + 1


@pytest.mark.parametrize(
    ("selector", "domain"),
    [
        ("s" * 64, REMOTE),  # a label over 63 octets
        ("a..b", REMOTE),  # an empty label
        ("remote", "other..example"),  # d= itself (the From domain) with an empty label
        (".".join(["abcdefghij" * 6] * 4), REMOTE),  # the key's name over 255 octets
    ],
)
def test_a_key_name_that_cannot_exist_is_554_not_451(stack, build, selector, domain):
    """Nothing to look up, nothing to wait for: such a signature is invalid, for good."""
    data = signed_over(build, (b"from", b"subject"), selector, domain)
    with pytest.raises(smtplib.SMTPDataError) as info:
        stack.deliver(f"x@{REMOTE}", [CAROL], data)  # Postfix checks the envelope's syntax
    assert (info.value.smtp_code, info.value.smtp_error) == (
        554,
        b"5.7.1 No valid DKIM signature found",
    )


@pytest.mark.parametrize(
    ("literal", "code"), [("[127.0.0.1]", None), ("[127.0.0.9]", 554), ("[IPv6:::1]", 554)]
)
def test_a_from_address_literal_must_be_the_connecting_servers_address(stack, build, literal, code):
    """Postfix gives the milter the client's address at CONNECT (here 127.0.0.1)."""
    sender = f"x@{literal}"
    data = build.plain_message(sender, CAROL, extra=REMOTE_HEADERS)
    before = stack.count(CAROL)
    if code is None:
        stack.deliver(sender, [CAROL], data)
        assert len(stack.delivered(CAROL, before + 1)) == before + 1
        return
    with pytest.raises(smtplib.SMTPDataError) as info:
        stack.deliver(sender, [CAROL], data)
    assert (info.value.smtp_code, info.value.smtp_error) == (
        code,
        b"5.7.1 From address literal is not the sending server's address",
    )
    assert "127.0.0." not in stack.log()  # never an IP address in the log, even at debug


def test_mail_posted_with_sendmail_counts_as_from_127_0_0_1(stack):
    """Postfix hands the milter non-SMTP mail with the client address 127.0.0.1: a From
    literal of any other address is refused, that one passes (only root and local users post
    so)."""
    for literal, delivered in (("[127.0.0.9]", False), ("[127.0.0.1]", True)):
        message = (
            f"From: <x@{literal}>\r\nTo: <{CAROL}>\r\nSubject: posted\r\n"
            "Date: Sat, 21 Nov 2026 05:41:21 +0000\r\n\r\ncleartext\r\n"
        ).encode()
        refused_before = stack.log().count("From address literal differs")
        before = stack.count(CAROL)
        result = subprocess.run(
            ["sendmail", "-C", str(stack.postfix.dir), "-f", "", "-i", CAROL],
            input=message,
            capture_output=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        if delivered:
            assert len(stack.delivered(CAROL, before + 1)) == before + 1
            continue
        deadline = time.monotonic() + 30
        while stack.log().count("From address literal differs") == refused_before:
            assert time.monotonic() < deadline, stack.log()[-2000:]
            time.sleep(0.2)
