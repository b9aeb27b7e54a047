"""The loopback mail stack rendered from the templates works: submission, SASL, LMTP, IMAP."""

from __future__ import annotations

import imaplib
import smtplib
import ssl
import time

import pytest
from harness import TEMPLATES
from harness.dovecot import Dovecot
from harness.fixtures import stack_config
from harness.postfix import Postfix
from harness.render import PLACEHOLDER as _PLACEHOLDER
from harness.render import render_text

pytestmark = pytest.mark.stack


def test_every_template_placeholder_is_known():
    with pytest.raises(KeyError, match="missing: x"):
        render_text("a {{x}} b", {})
    assert render_text("a {{ x }} b", {"x": 1}) == "a 1 b"
    names = set()
    for template in TEMPLATES.rglob("*"):
        if template.is_file():
            names |= set(_PLACEHOLDER.findall(template.read_text()))
    assert {"mail_domain", "mailboxes_dir", "auth_socket", "chroot"} <= names


def test_submission_is_delivered_with_subject_hidden(stack_root):
    config = stack_config(stack_root)
    passwd = stack_root / "passwd"
    passwd.write_text(
        "alice0001@chat.example:{PLAIN}password1\nbob000001@chat.example:{PLAIN}password2\n"
    )
    postfix = Postfix(stack_root, config)
    dovecot = Dovecot(
        stack_root,
        config,
        passwd_file=passwd,
        lmtp_socket=postfix.lmtp_socket,
        sasl_socket=postfix.sasl_socket,
    )
    with dovecot, postfix:
        context = ssl._create_unverified_context()
        with smtplib.SMTP("127.0.0.1", postfix.submission_port, timeout=30) as smtp:
            smtp.starttls(context=context)
            smtp.login("alice0001@chat.example", "password1")
            smtp.sendmail(
                "alice0001@chat.example",
                ["bob000001@chat.example"],
                b"From: alice0001@chat.example\r\nTo: bob000001@chat.example\r\n"
                b"Subject: secret topic\r\nX-Mailer: leaky\r\n\r\nhello\r\n",
            )
        imap = imaplib.IMAP4("127.0.0.1", dovecot.imap_port)
        imap.starttls(context)
        imap.login("bob000001@chat.example", "password2")
        deadline = time.monotonic() + 20
        while True:
            count = int(imap.select("INBOX")[1][0])
            if count or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert count == 1, postfix.log_text()[-2000:]
        message = imap.fetch("1", "(RFC822)")[1][0][1]
        imap.logout()
    assert b"Subject: [...]" in message
    assert b"secret topic" not in message
    assert b"X-Mailer" not in message
    assert b"[127.0.0.1]" not in message, message.decode()
