"""The milter's counters after real traffic through Postfix: each moved by what happened."""

from __future__ import annotations

import smtplib
from pathlib import Path

import pytest
from harness.milterstack import ALICE, BOB, MilterStack
from metrics.privacy import scan_directory
from metrics.promtool import check_metrics
from metrics.wait import moved, samples, wait_for

pytestmark = pytest.mark.stack

ACCEPTED = 'chatmail_milter_messages_total{outcome="accepted",code="250"}'
REFUSED_523 = 'chatmail_milter_messages_total{outcome="encryption_needed",code="523"}'
SIGNED = "chatmail_milter_dkim_signatures_total"


@pytest.fixture(scope="module")
def stack():
    from harness import stack_dir

    stack = MilterStack(stack_dir("chatmail-metrics-milter-"), dkim={"verify": "no"})
    stack.milter.start()
    with stack.dovecot, stack.postfix:
        yield stack
    stack.milter.close()


def test_counters_move_by_what_happened(stack, build, gpg):
    path = Path(stack.config.chatmail.metrics_dir) / "chatmail-milter.prom"
    before = wait_for(path, lambda s: ACCEPTED in s)
    assert before[ACCEPTED] == before[REFUSED_523] == before[SIGNED] == 0

    encrypted = build.encrypted_message(gpg.encrypt("counted").replace("\n", "\r\n"), sender=ALICE)
    stack.submit(ALICE, [BOB], encrypted)
    with pytest.raises(smtplib.SMTPDataError):
        stack.submit(ALICE, [BOB], build.plain_message(ALICE, BOB))
    stack.delivered(BOB, 1)

    want = {ACCEPTED: 1, REFUSED_523: 1, SIGNED: 1}
    after = wait_for(path, lambda s: moved(before, s) == want)
    assert moved(before, after) == want

    # stopped, the milter writes once more: the same values, still a valid file
    assert stack.milter.stop() == 0
    assert samples(path) == after
    text = path.read_text()
    result = check_metrics(text)
    assert result.returncode == 0, result.stdout + result.stderr
    assert scan_directory(path.parent) == {path.name: []}
    stack.milter.start()


def test_the_collector_counts_postfixs_queues(stack, build):
    """chatmail-metrics-collect reads the real queue: a message Postfix cannot hand to Dovecot
    (stopped) waits in `deferred`, and leaves it when delivered."""
    import subprocess
    import sys
    import time

    from harness.milterstack import CAROL
    from metrics.promtool import parse_samples

    exe = str(Path(sys.executable).parent / "chatmail-metrics-collect")
    command = [
        exe,
        "--config",
        stack.config.path,
        "--print",
        "--queue-dir",
        str(stack.postfix.queue),
    ]

    def queues() -> dict[str, float]:
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        samples = parse_samples(out)
        assert samples['chatmail_collect_success{source="postfix"}'] == 1
        return {k.split('"')[1]: v for k, v in samples.items() if "queue_messages" in k}

    assert set(queues().values()) == {0}
    before = stack.count(CAROL)
    stack.dovecot.stop()
    try:
        stack.deliver(f"dave@{CAROL.split('@')[1]}", [CAROL], build.plain_message(BOB, CAROL))
        deadline = time.monotonic() + 30
        while queues()["deferred"] != 1:
            assert time.monotonic() < deadline, queues()
            time.sleep(0.2)
        assert sum(queues().values()) == 1
    finally:
        stack.dovecot.start()
    stack.postfix.flush()
    stack.delivered(CAROL, before + 1)
    deadline = time.monotonic() + 30
    while sum(queues().values()) != 0:
        assert time.monotonic() < deadline, queues()
        time.sleep(0.2)
