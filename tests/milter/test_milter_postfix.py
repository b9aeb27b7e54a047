"""Real Postfix (rendered from the templates) consulting the real milter over its socket.

Submission with SASL through Dovecot (plain passwd-file), delivery over LMTP into Maildirs.
The milter runs as its unit describes: the socket held by the harness like a .socket unit
(root:postfix 0660), the process as the mail user with the socket on fd 3.
"""

from __future__ import annotations

import smtplib
import threading

import pytest
from harness.milterstack import ALICE, BOB, CAROL, MilterStack

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def stack():
    from harness import stack_dir

    root = stack_dir("chatmail-milter-postfix-")
    # These tests are about encryption: incoming DKIM is off here (test_milter_dkim_postfix.py
    # has it on); outgoing mail is signed with the test key as in production.
    stack = MilterStack(root, dkim={"verify": "no"})
    stack.milter.start()
    with stack.dovecot, stack.postfix:
        yield stack
    stack.milter.close()


def alice_message(build, gpg, text="hi Bob") -> bytes:
    return build.encrypted_message(gpg.encrypt(text).replace("\n", "\r\n"), sender=ALICE)


def test_encrypted_submission_is_delivered(stack, build, gpg):
    before = len(list((stack.mailboxes / BOB / "new").glob("*")))
    stack.submit(ALICE, [BOB], alice_message(build, gpg, "encrypted delivery"))
    stored = stack.delivered(BOB, before + 1)
    assert any(
        b"-----BEGIN PGP MESSAGE-----" in m and b"Return-Path: <alice1234@" in m for m in stored
    )


def test_cleartext_submission_gets_523_at_the_client(stack, build):
    with pytest.raises(smtplib.SMTPDataError) as info:
        stack.submit(ALICE, [BOB], build.plain_message(ALICE, BOB))
    assert info.value.smtp_code == 523
    assert info.value.smtp_error == b"5.7.10 Encryption Needed: Invalid Unencrypted Mail"


def test_from_header_forgery_gets_550(stack, build, gpg):
    with pytest.raises(smtplib.SMTPDataError) as info:
        stack.submit(ALICE, [BOB], build.encrypted_message(gpg.encrypt("x"), sender=BOB))
    assert info.value.smtp_code == 550
    assert info.value.smtp_error == b"5.7.1 From header does not match sender"


def test_incoming_cleartext_refused_for_enforcing_account_only(stack, build):
    plain = build.plain_message("someone@other.example", BOB)
    with pytest.raises(smtplib.SMTPDataError) as info:
        stack.deliver("someone@other.example", [BOB], plain)
    assert info.value.smtp_code == 523
    before = len(list((stack.mailboxes / CAROL / "new").glob("*")))
    stack.deliver("someone@other.example", [CAROL], build.plain_message("someone@other.example"))
    assert len(stack.delivered(CAROL, before + 1)) == before + 1


def test_incoming_forwarded_encrypted_mail_gets_null_envelope_sender(stack, build, gpg):
    before = len(list((stack.mailboxes / BOB / "new").glob("*")))
    stack.deliver("bounces+x@lists.example", [BOB], alice_message(build, gpg, "forwarded"))
    newest = stack.delivered(BOB, before + 1)
    assert any(m.startswith(b"Return-Path: <>") for m in newest)


def test_milter_down_means_4xx_then_delivered_when_back(stack, build, gpg):
    message = alice_message(build, gpg, "sent while the milter was down")
    before = len(list((stack.mailboxes / BOB / "new").glob("*")))
    stack.milter.close()  # socket gone too: systemctl stop chatmail-milter.socket
    try:
        with pytest.raises(smtplib.SMTPResponseException) as info:
            stack.submit(ALICE, [BOB], message)
        assert 400 <= info.value.smtp_code < 500
        assert len(list((stack.mailboxes / BOB / "new").glob("*"))) == before
    finally:
        stack.milter = stack.new_milter().start()
    stack.submit(ALICE, [BOB], message)  # the client retries: nothing lost
    assert len(stack.delivered(BOB, before + 1)) == before + 1


def test_restart_while_socket_is_held_loses_nothing(stack, build, gpg):
    """Like a restart of the service under its .socket unit: connections wait in the queue."""
    before = len(list((stack.mailboxes / BOB / "new").glob("*")))
    stack.milter.stop()
    errors: list[BaseException] = []

    def send() -> None:
        try:
            stack.submit(ALICE, [BOB], alice_message(build, gpg, "queued during restart"))
        except BaseException as exc:
            errors.append(exc)

    sender = threading.Thread(target=send)
    sender.start()
    # the submission really waits: Postfix's connection to the milter is queued in the socket
    assert stack.milter.wait_for_queued_connection(30), stack.postfix.log_text()[-3000:]
    assert sender.is_alive() and not errors, errors
    assert len(list((stack.mailboxes / BOB / "new").glob("*"))) == before
    stack.milter.start()
    sender.join(60)
    assert not errors, errors
    assert len(stack.delivered(BOB, before + 1)) == before + 1
