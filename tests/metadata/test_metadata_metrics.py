"""chatmail-metadata's metrics after real pushes: Postfix -> LMTP -> Dovecot -> the responder
-> HTTPS to the local stand-in; each counter moved by what the stand-in saw."""

from __future__ import annotations

import shutil
import smtplib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import stack_dir
from harness.imap import Imap
from harness.pushservice import StandIn
from harness.relay import LocalRelay
from metrics.privacy import scan_directory
from metrics.promtool import check_metrics
from metrics.wait import moved, samples, wait_for

pytestmark = pytest.mark.stack

DOMAIN = "chat.localhost"
PASSWORD = "metrics-push-password"
NOTIFICATIONS = "chatmail_metadata_notifications_total"


@pytest.fixture(scope="module")
def stand_in() -> Iterator[StandIn]:
    directory = stack_dir("chatmail-notify-metrics-")
    server = StandIn(directory)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def relay(stand_in: StandIn) -> Iterator[LocalRelay]:
    root = stack_dir("chatmail-metrics-push-")
    sections = {
        "metadata": {
            "notify_url": stand_in.url,
            "notify_ca_file": stand_in.cert,
            "notify_retry_base": 0.2,
            "notify_give_up_after": 600,
        }
    }
    relay = LocalRelay(root, domain=DOMAIN, milter=False, config_sections=sections)
    try:
        with relay:
            yield relay
    except BaseException:
        print(relay.service_logs()[-20000:])
        raise
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_tokens_and_notifications_are_counted(relay, stand_in):
    path = Path(relay.config.chatmail.metrics_dir) / "chatmail-metadata.prom"
    imap = Imap(relay.dovecot.imaps_port).login(f"metrics01@{DOMAIN}", PASSWORD)
    before = wait_for(path, lambda s: f'{NOTIFICATIONS}{{result="sent"}}' in s)
    assert before["chatmail_metadata_notify_queue_length"] == 0

    stand_in.answers["tokFail"] = 500
    assert imap.set_token("tokOK").startswith(b"OK")
    assert imap.set_token("tokFail").startswith(b"OK")
    assert not imap.set_token("not a token").startswith(b"OK")  # a space: refused
    imap.close()
    address = f"metrics01@{DOMAIN}"
    message = f"From: <a@elsewhere.example>\r\nTo: <{address}>\r\n\r\nencrypted, really\r\n"
    with smtplib.SMTP("127.0.0.1", relay.postfix.smtp_port, timeout=30) as smtp:
        smtp.sendmail("a@elsewhere.example", [address], message)

    # tokFail is answered 500 a few times (retried 0.2 s, 0.4 s, ... later), then 410
    deadline = time.monotonic() + 30
    while stand_in.count("tokFail") < 2 or stand_in.count("tokOK") < 1:
        assert time.monotonic() < deadline, stand_in.received
        time.sleep(0.05)
    waiting = wait_for(path, lambda s: s.get("chatmail_metadata_notify_queue_length") == 1)
    assert waiting["chatmail_metadata_notify_queue_oldest_seconds"] > 0
    stand_in.answers["tokFail"] = 410
    after = wait_for(path, lambda s: s.get(f'{NOTIFICATIONS}{{result="gone"}}', 0) >= 1)
    after = wait_for(path, lambda s: s["chatmail_metadata_notify_queue_length"] == 0)

    failures = stand_in.count("tokFail") - 1  # every answer but the last (410) was a 500
    want = {
        "chatmail_metadata_tokens_stored_total": 2,
        "chatmail_metadata_tokens_refused_total": 1,
        f'{NOTIFICATIONS}{{result="sent"}}': 1,
        f'{NOTIFICATIONS}{{result="gone"}}': 1,
        f'{NOTIFICATIONS}{{result="failed"}}': failures,
        "chatmail_metadata_notifications_retried_total": failures,
    }
    assert moved(before, after) == want
    assert after["chatmail_metadata_notify_queue_oldest_seconds"] == 0
    assert after['chatmail_metadata_notifications_dropped_total{reason="given_up"}'] == 0
    relay.metadata.stop()
    assert samples(path) == after  # the write at stop
    result = check_metrics(path.read_text())
    assert result.returncode == 0, result.stdout + result.stderr
    assert scan_directory(path.parent)[path.name] == []
    relay.metadata.start()
