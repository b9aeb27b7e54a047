"""The push flow end to end on loopback: Postfix -> LMTP -> Dovecot's Lua hook ->
chatmail-metadata -> HTTPS POST to a local stand-in for the notification service."""

from __future__ import annotations

import re
import shutil
import smtplib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from chatmail_services.metadata import notifyqueue as nq
from harness import stack_dir
from harness.imap import Imap
from harness.pushservice import StandIn
from harness.relay import LocalRelay

pytestmark = pytest.mark.stack

DOMAIN = "chat.localhost"
PASSWORD = "push-test-password"


@pytest.fixture(scope="module")
def stand_in() -> Iterator[StandIn]:
    directory = stack_dir("chatmail-notify-")
    server = StandIn(directory)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def relay(stand_in: StandIn) -> Iterator[LocalRelay]:
    root = stack_dir("chatmail-push-")
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
            log = relay.service_logs()
            assert "Traceback" not in log, log
            assert f"@{DOMAIN}" not in log, log
    except BaseException:
        print(relay.service_logs()[-20000:], relay.dovecot.log_text()[-20000:])
        raise
    finally:
        shutil.rmtree(root, ignore_errors=True)


def with_tokens(relay: LocalRelay, local: str, *device_tokens: str) -> str:
    imap = Imap(relay.dovecot.imaps_port).login(f"{local}@{DOMAIN}", PASSWORD)
    for token in device_tokens:
        assert imap.set_token(token).startswith(b"OK")
    imap.close()
    return f"{local}@{DOMAIN}"


def deliver(relay: LocalRelay, to: str, sender: str = "friend@elsewhere.example") -> None:
    message = f"From: <{sender}>\r\nTo: <{to}>\r\nSubject: [...]\r\n\r\nencrypted, really\r\n"
    with smtplib.SMTP("127.0.0.1", relay.postfix.smtp_port, timeout=30) as smtp:
        smtp.sendmail(sender, [to], message)


def queue_files(relay: LocalRelay) -> list[Path]:
    return list(Path(relay.config.metadata.queue_dir).glob("*.json"))


def all_sent(relay: LocalRelay) -> None:
    """Until the notifier's queue is empty: every notification made so far is done, so the
    stand-in's counts are final (a pending one, or a retry, would still have its file)."""
    wait_for(lambda: not queue_files(relay))


def delivered(relay: LocalRelay, to: str, count: int) -> None:
    """Until Postfix has `count` messages to `to` delivered over LMTP. Dovecot answers the
    LMTP transaction after the push hook, and chatmail-metadata answers the hook after the
    queue file is on disk: from then on, a notification of those messages is in the queue."""

    def sent() -> int:
        lines = relay.postfix.log_text().splitlines()
        return sum(1 for line in lines if f" to=<{to}>," in line and " status=sent " in line)

    wait_for(lambda: sent() >= count)


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_one_post_per_token_of_the_recipient(relay, stand_in):
    address = with_tokens(relay, "pushed001", "tokA1", "tokA2")
    with_tokens(relay, "bystander", "tokB1")
    deliver(relay, address)
    delivered(relay, address, 1)
    wait_for(lambda: stand_in.count("tokA1") == 1 and stand_in.count("tokA2") == 1)
    all_sent(relay)  # and nothing more: no duplicate, nothing for the bystander
    assert (stand_in.count("tokA1"), stand_in.count("tokA2"), stand_in.count("tokB1")) == (1, 1, 0)


def test_a_message_to_oneself_notifies_nobody(relay, stand_in):
    address = with_tokens(relay, "selfsend1", "tokSelf")
    deliver(relay, address, sender=address)
    delivered(relay, address, 1)
    home = Path(relay.config.chatmail.mailboxes_dir) / address
    assert list(home.glob("new/*"))
    all_sent(relay)
    assert stand_in.count("tokSelf") == 0


def test_410_deletes_the_token(relay, stand_in):
    address = with_tokens(relay, "goneaway1", "tokDead", "tokAlive")
    stand_in.answers["tokDead"] = 410
    deliver(relay, address)
    wait_for(lambda: stand_in.count("tokDead") == 1 and stand_in.count("tokAlive") == 1)
    imap = Imap(relay.dovecot.imaps_port).login(address, PASSWORD)
    wait_for(lambda: imap.get("INBOX", "/private/devicetoken") == {
        "/private/devicetoken": b"tokAlive"
    })  # fmt: skip
    imap.close()
    deliver(relay, address)
    delivered(relay, address, 2)
    all_sent(relay)
    assert (stand_in.count("tokAlive"), stand_in.count("tokDead")) == (2, 1)


def test_nothing_lost_while_the_service_is_down_and_the_notifier_killed(relay, stand_in):
    """Three messages while the service is down: one pending notification for the token
    (it stands for all three); it survives SIGKILL, a fourth message after the restart joins
    it, and when the service is back the device is woken exactly once."""
    address = with_tokens(relay, "patient01", "tokWait")
    stand_in.stop()
    for _ in range(3):
        deliver(relay, address)
    delivered(relay, address, 3)
    assert len(queue_files(relay)) == 1
    # it has failed at least once (the attempt count is written back to its file)
    wait_for(lambda: all(b'"attempts":0' not in path.read_bytes() for path in queue_files(relay)))
    relay.metadata.kill()  # SIGKILL
    relay.metadata.start()
    deliver(relay, address)  # the restarted service takes it (socket activation)
    delivered(relay, address, 4)
    assert len(queue_files(relay)) == 1
    assert stand_in.count("tokWait") == 0
    stand_in.start()
    all_sent(relay)
    assert stand_in.count("tokWait") == 1  # at least once, and here exactly once


def test_a_client_cannot_set_messagenew_only_a_delivery_notifies(relay, stand_in):
    """An IMAP client's SETMETADATA of the hook's key, on any mailbox, in any case, is refused
    and sends nothing; one real delivery beside it makes exactly one POST."""
    address = with_tokens(relay, "forger001", "tokForge")
    imap = Imap(relay.dovecot.imaps_port).login(address, PASSWORD)
    imap.ok('CREATE "Other"')
    for mailbox, key in [
        ("INBOX", "/private/messagenew"),
        ("INBOX", "/PRIVATE/MessageNew"),
        ("Other", "/private/messagenew"),
        ("INBOX", "/shared/messagenew"),
    ]:
        for _ in range(3):
            status, _ = imap.command(f'SETMETADATA "{mailbox}" ({key} "1")')
            assert not status.startswith(b"OK"), (mailbox, key, status)
    imap.close()
    # a set that had been taken would be queued before its reply: the queue is final here
    all_sent(relay)
    assert stand_in.count("tokForge") == 0
    deliver(relay, address)
    delivered(relay, address, 1)
    wait_for(lambda: stand_in.count("tokForge") == 1)
    all_sent(relay)
    assert stand_in.count("tokForge") == 1


BOUND = 15


@pytest.fixture(scope="module")
def failing_stand_in() -> Iterator[StandIn]:
    directory = stack_dir("chatmail-notify500-")
    server = StandIn(directory)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def bounded_relay(failing_stand_in: StandIn) -> Iterator[LocalRelay]:
    """A relay whose notification queue holds at most BOUND notifications."""
    root = stack_dir("chatmail-pushbound-")
    sections = {
        "metadata": {
            "notify_url": failing_stand_in.url,
            "notify_ca_file": failing_stand_in.cert,
            "notify_retry_base": 0.2,
            "notify_give_up_after": 600,
            "notify_queue_max": BOUND,
        }
    }
    relay = LocalRelay(root, domain=DOMAIN, milter=False, config_sections=sections)
    try:
        with relay:
            yield relay
    except BaseException:
        print(relay.service_logs()[-20000:], relay.dovecot.log_text()[-20000:])
        raise
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_the_queue_is_bounded_while_the_service_answers_500(bounded_relay, failing_stand_in):
    """Two accounts with 10 tokens each, 25 messages, the service answering 500: never more
    than BOUND files; one per token (the first account's 10, then 5 of the second's); the
    rest dropped and counted in the log; all sent once the service answers 200 again."""
    relay, stand_in = bounded_relay, failing_stand_in
    first = [f"tokF{i:02}" for i in range(10)]
    second = [f"tokS{i:02}" for i in range(10)]
    for token in first + second:
        stand_in.answers[token] = 500
    a = with_tokens(relay, "flooded01", *first)
    b = with_tokens(relay, "flooded02", *second)
    most, watching = 0, True

    def watch() -> None:
        nonlocal most
        while watching:
            most = max(most, len(queue_files(relay)))
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with smtplib.SMTP("127.0.0.1", relay.postfix.smtp_port, timeout=30) as smtp:
            for i in range(25):
                to = a if i < 20 else b
                text = f"From: <x@elsewhere.example>\r\nTo: <{to}>\r\n\r\n{i}\r\n"
                smtp.sendmail("x@elsewhere.example", [to], text)
        delivered(relay, a, 20)
        delivered(relay, b, 5)
        files = [nq.decode(path.read_bytes()) for path in queue_files(relay)]
    finally:
        watching = False
        watcher.join()
    assert most <= BOUND
    assert sorted(p.token for p in files if p.address == a) == first
    assert len([p for p in files if p.address == b]) == BOUND - len(first)
    log = relay.service_logs()
    dropped = re.findall(rf"notification queue full \({BOUND}\): (\d+) notification\(s\)", log)
    assert dropped and int(dropped[0]) >= 1
    assert f"@{DOMAIN}" not in log and "tokS" not in log and "tokF" not in log
    stand_in.answers.clear()
    all_sent(relay)
    assert all(stand_in.count(t) >= 2 for t in first)  # one 500 at least, then the 200
