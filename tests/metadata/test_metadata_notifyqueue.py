"""The notification queue: the retry rule and the file format (pure, with hypothesis), the
queue directory, and the notifier's scheduling against a fake notification service (off this
machine in production, so the one thing stood in for)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from chatmail_services.metadata import notifyqueue as nq
from chatmail_services.metadata.notifier import Notifier
from chatmail_services.metadata.notifyqueue import Pending, Policy, Queue
from hypothesis import given
from hypothesis import strategies as st

POLICY = Policy(retry_base=8, give_up_after=5 * 3600)
pendings = st.builds(
    Pending,
    id=st.text("0123456789abcdef-", min_size=1, max_size=30),
    address=st.text(max_size=40),
    token=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1),
    first_try=st.floats(0, 2e9),
    attempts=st.integers(0, 1000),
    next_try=st.floats(0, 2e9),
)


def test_answers():
    p = Pending("x", "a@chat.example", "tok", first_try=1000.0)
    assert nq.after_attempt(p, 200, 1000, POLICY) == nq.DONE
    assert nq.after_attempt(p, 204, 1000, POLICY) == nq.DONE
    assert nq.after_attempt(p, 410, 1000, POLICY) == nq.FORGET_TOKEN
    retry = nq.after_attempt(p, 500, 1000, POLICY)
    assert isinstance(retry, Pending) and (retry.attempts, retry.next_try) == (1, 1008)
    again = nq.after_attempt(retry, None, 1008, POLICY)
    assert (again.attempts, again.next_try) == (2, 1024)
    late = Pending("x", "a@chat.example", "tok", first_try=1000.0, attempts=20)
    assert nq.after_attempt(late, 503, 1000 + 5 * 3600 - 10, POLICY) == nq.GIVE_UP


@given(pendings, st.one_of(st.none(), st.integers(100, 599)), st.floats(0, 2e9))
def test_after_attempt_is_total_and_moves_forward(pending, status, now):
    outcome = nq.after_attempt(pending, status, now, POLICY)
    if status is not None and 200 <= status < 300:
        assert outcome == nq.DONE
    elif status == 410:
        assert outcome == nq.FORGET_TOKEN
    elif isinstance(outcome, Pending):
        assert outcome.attempts == pending.attempts + 1
        assert now < outcome.next_try <= now + POLICY.max_delay
        assert outcome.next_try - pending.first_try <= POLICY.give_up_after
    else:
        assert outcome == nq.GIVE_UP


@given(pendings)
def test_file_round_trip(pending):
    assert nq.decode(nq.encode(pending)) == pending


@given(st.binary())
def test_decode_never_raises(data):
    assert nq.decode(data) is None or isinstance(nq.decode(data), Pending)


def test_queue_directory(tmp_path: Path):
    queue = Queue(tmp_path)
    made = queue.put("a@chat.example", ["t1", "t2"], now=5.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.id + ".json" for p in made)
    (tmp_path / "leftover.tmp").write_text("half")
    (tmp_path / "bad.json").write_text("{")
    assert sorted(queue.load(), key=lambda p: p.token) == made
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.id + ".json" for p in made)
    queue.save(nq.after_attempt(made[0], 500, 6.0, POLICY))
    assert {p.attempts for p in queue.load()} == {0, 1}
    for p in made:
        queue.remove(p)
    assert list(tmp_path.iterdir()) == []


class FakeService:
    """Answers per token from a script; records the calls and the peak concurrency."""

    def __init__(self, script: dict[str, list[int | None]], delay: float = 0.0) -> None:
        self.script = script
        self.delay = delay
        self.calls: list[str] = []
        self.active = self.peak = 0
        self.lock = threading.Lock()

    def __call__(self, token: str) -> int | None:
        with self.lock:
            self.calls.append(token)
            self.active += 1
            self.peak = max(self.peak, self.active)
            answers = self.script.get(token, [200])
            answer = answers.pop(0) if len(answers) > 1 else answers[0]
        time.sleep(self.delay)
        with self.lock:
            self.active -= 1
        return answer


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_notifier_retries_forgets_and_bounds_concurrency(tmp_path: Path):
    queue = Queue(tmp_path)
    service = FakeService({"flaky": [500, None, 200], "dead": [410]}, delay=0.05)
    forgotten: list[tuple[str, str]] = []
    notifier = Notifier(
        queue, Policy(0.01, 60), service, lambda a, t: forgotten.append((a, t)), concurrency=3
    )
    notifier.start()
    try:
        many = [f"tok{i}" for i in range(20)]
        notifier.submit(queue.put("a@chat.example", [*many, "flaky", "dead"]))
        wait_for(lambda: not list(tmp_path.iterdir()))
    finally:
        notifier.stop()
    assert sorted(service.calls) == sorted([*many, "flaky", "flaky", "flaky", "dead"])
    assert forgotten == [("a@chat.example", "dead")]
    assert service.peak <= 3


def test_notifier_gives_up(tmp_path: Path):
    queue = Queue(tmp_path)
    service = FakeService({"never": [503]})
    notifier = Notifier(queue, Policy(0.01, 0.2), service, lambda a, t: None, concurrency=1)
    notifier.start()
    try:
        notifier.submit(queue.put("a@chat.example", ["never"]))
        wait_for(lambda: not list(tmp_path.iterdir()))
    finally:
        notifier.stop()
    assert 2 <= len(service.calls) <= 10


@pytest.mark.parametrize("answer", [500, None])
def test_a_stopped_notifier_keeps_what_is_pending(tmp_path: Path, answer):
    queue = Queue(tmp_path)
    service = FakeService({"later": [answer]})
    notifier = Notifier(queue, Policy(30, 600), service, lambda a, t: None)
    notifier.start()
    notifier.submit(queue.put("a@chat.example", ["later"]))
    wait_for(lambda: service.calls)
    notifier.stop()
    (kept,) = queue.load()
    assert (kept.token, kept.attempts) == ("later", 1)
