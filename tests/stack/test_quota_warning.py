"""Dovecot's quota warning at 75 % runs the reaper for that one mailbox right away, which
trims it to 70 % with its own quota rule (the daily run stays the backstop)."""

from __future__ import annotations

import imaplib
import shutil
import smtplib
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import stack_dir
from harness.relay import LocalRelay

pytestmark = pytest.mark.stack

DOMAIN = "chat.localhost"
QUOTA = 200 * 1024


@pytest.fixture
def relay() -> Iterator[LocalRelay]:
    root = stack_dir("chatmail-quota-")
    sections = {
        "chatmail": {"max_mailbox_size": QUOTA},
        "expire": {"quota_trim_min_age_hours": 0},  # the messages here are minutes old
    }
    relay = LocalRelay(root, domain=DOMAIN, milter=False, config_sections=sections)
    try:
        with relay:
            yield relay
    except BaseException:
        print(relay.dovecot.log_text()[-5000:])
        raise
    finally:
        shutil.rmtree(root, ignore_errors=True)


def stored(home: Path) -> int:
    return sum(p.stat().st_size for p in home.glob("*/*") if p.parent.name in ("new", "cur"))


def messages(home: Path) -> int:
    return len([p for p in home.glob("*/*") if p.parent.name in ("new", "cur")])


def test_crossing_75_percent_trims_that_mailbox_at_once(relay):
    address = f"fillsup01@{DOMAIN}"
    imap = imaplib.IMAP4_SSL(
        "127.0.0.1", relay.dovecot.imaps_port, ssl_context=ssl._create_unverified_context()
    )
    imap.login(address, "quota-test-password")
    imap.logout()
    home = Path(relay.config.chatmail.mailboxes_dir) / address
    body = "x" * 76 + "\r\n"
    message = f"Subject: filler\r\n\r\n{body * 200}"  # about 16 KiB
    delivered = 0
    with smtplib.SMTP("127.0.0.1", relay.postfix.smtp_port, timeout=30) as smtp:
        while delivered < 11:  # 11 x 16 KiB = 176 KiB: past 75 % of 200 KiB
            smtp.sendmail("friend@elsewhere.example", [address], message)
            delivered += 1
            deadline = time.monotonic() + 30
            while messages(home) < delivered and stored(home) <= QUOTA * 0.75:
                assert time.monotonic() < deadline, relay.dovecot.log_text()[-3000:]
                time.sleep(0.05)
            if stored(home) > QUOTA * 0.75:
                break
    deadline = time.monotonic() + 30
    while stored(home) > QUOTA * 0.70:
        assert time.monotonic() < deadline, (stored(home), relay.dovecot.log_text()[-3000:])
        time.sleep(0.1)
    assert 0 < messages(home) < delivered
