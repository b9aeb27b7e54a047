"""The notification queue: the retry and coalescing rules and the file format (pure, with
hypothesis), the queue directory and its bound, and the notifier's scheduling against a fake
notification service (off this machine in production, so the one thing stood in for)."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from chatmail_services.metadata import notifyqueue as nq
from chatmail_services.metadata.notifier import Notifier
from chatmail_services.metadata.notifyqueue import Pending, Policy, Queue
from hypothesis import given
from hypothesis import strategies as st

POLICY = Policy(retry_base=8, give_up_after=5 * 3600)
LIMIT = 20000
pendings = st.builds(
    Pending,
    address=st.text(max_size=40),
    token=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1),
    since=st.floats(0, 2e9),
    attempts=st.integers(0, 1000),
    next_try=st.floats(0, 2e9),
)
outcomes = st.one_of(st.sampled_from([nq.DONE, nq.FORGET_TOKEN, nq.GIVE_UP]), pendings)


def test_answers():
    p = Pending("a@chat.example", "tok", since=1000.0)
    assert nq.after_attempt(p, 200, 1000, POLICY) == nq.DONE
    assert nq.after_attempt(p, 204, 1000, POLICY) == nq.DONE
    assert nq.after_attempt(p, 410, 1000, POLICY) == nq.FORGET_TOKEN
    retry = nq.after_attempt(p, 500, 1000, POLICY)
    assert isinstance(retry, Pending) and (retry.attempts, retry.next_try) == (1, 1008)
    again = nq.after_attempt(retry, None, 1008, POLICY)
    assert (again.attempts, again.next_try) == (2, 1024)
    late = Pending("a@chat.example", "tok", since=1000.0, attempts=20)
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
        assert outcome.next_try - pending.since <= POLICY.give_up_after
    else:
        assert outcome == nq.GIVE_UP


@given(pendings)
def test_file_round_trip(pending):
    assert nq.decode(nq.encode(pending)) == pending


@given(st.binary())
def test_decode_never_raises(data):
    assert nq.decode(data) is None or isinstance(nq.decode(data), Pending)


@given(pendings, outcomes, st.one_of(st.none(), st.floats(0, 2e9)), st.floats(0, 2e9))
def test_settle(sent, outcome, again, now):
    """After an attempt: a dead token keeps nothing; a retry stays (moved to the later
    message, if one came during the POST); otherwise only a later message keeps one, new."""
    kept = nq.settle(sent, outcome, again, now)
    if outcome == nq.FORGET_TOKEN:
        assert kept is None
    elif isinstance(outcome, Pending):
        assert kept == (outcome if again is None else replace(outcome, since=again))
    elif again is None:
        assert kept is None
    else:
        assert kept == replace(sent, since=again, attempts=0, next_try=now)


def test_legacy_file_is_read():
    """A file of the earlier format (a random id, `first_try`) still decodes."""
    old = b'{"id":"18a-ab","address":"a@x","token":"t","first_try":5,"attempts":1,"next_try":9}'
    assert nq.decode(old) == Pending("a@x", "t", since=5.0, attempts=1, next_try=9.0)


json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=10,
)


@given(st.dictionaries(st.sampled_from(list(Pending.__dataclass_fields__)), json_values))
def test_decode_of_any_json_object_never_raises(fields):
    data = json.dumps(fields).encode()
    assert nq.decode(data) is None or isinstance(nq.decode(data), Pending)


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_queue_directory(tmp_path: Path):
    queue = Queue(tmp_path, LIMIT)
    made = queue.put("a@chat.example", ["t1", "t2"], now=5.0)
    assert names(tmp_path) == sorted(p.id + ".json" for p in made)
    assert queue.put("a@chat.example", ["t1", "t2"], now=6.0) == []  # coalesced
    assert names(tmp_path) == sorted(p.id + ".json" for p in made)
    (tmp_path / "leftover.tmp").write_text("half")
    (tmp_path / "bad.json").write_text("{")
    # a second file for t1 under another name (the earlier format's random ids)
    (tmp_path / "18a-ab.json").write_bytes(nq.encode(replace(made[0], since=7.0)))
    again = Queue(tmp_path, LIMIT)
    loaded = sorted(again.load(), key=lambda p: p.token)
    assert [(p.token, p.since) for p in loaded] == [("t1", 7.0), ("t2", 5.0)]
    assert names(tmp_path) == sorted(p.id + ".json" for p in made)
    sent = again.begin(loaded[1].id)
    assert sent == loaded[1] and again.begin(loaded[1].id) is None  # taken once
    retry = nq.after_attempt(sent, 500, 8.0, POLICY)
    assert again.end(sent, retry, 8.0) == retry
    assert {p.attempts for p in Queue(tmp_path, LIMIT).load()} == {0, 1}
    for p in loaded:
        assert again.end(again.begin(p.id) or p, nq.DONE, 9.0) is None
    assert list(tmp_path.iterdir()) == []


def test_a_message_during_the_post_gets_its_own_notification(tmp_path: Path):
    queue = Queue(tmp_path, LIMIT)
    (first,) = queue.put("a@chat.example", ["tok"], now=1.0)
    sent = queue.begin(first.id)
    assert queue.put("a@chat.example", ["tok"], now=2.0) == []  # remembered, not a second
    kept = queue.end(sent, nq.DONE, 3.0)
    assert kept == Pending("a@chat.example", "tok", since=2.0, attempts=0, next_try=3.0)
    assert nq.decode((tmp_path / (kept.id + ".json")).read_bytes()) == kept
    assert queue.end(queue.begin(kept.id), nq.DONE, 4.0) is None
    assert list(tmp_path.iterdir()) == []


def test_the_bound_drops_new_tokens_and_counts_them(tmp_path: Path, caplog):
    caplog.set_level(logging.INFO, "chatmail.metadata")
    queue = Queue(tmp_path, 3)
    assert len(queue.put("a@chat.example", ["t1", "t2"], now=1.0)) == 2
    assert len(queue.put("b@chat.example", ["u1", "u2", "u3"], now=2.0)) == 1
    assert len(list(tmp_path.iterdir())) == 3
    assert queue.put("a@chat.example", ["t1", "t2"], now=3.0) == []  # coalesced: no drop
    queue.put("c@chat.example", ["v1"], now=4.0)  # within a minute of the first line
    queue.report_dropped(5.0, force=True)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "notification queue full (3): 1 notification(s) dropped",
        "notification queue full (3): 2 notification(s) dropped",
    ]
    # fewer files allowed than found at the start: the rest is dropped and counted
    smaller = Queue(tmp_path, 2)
    assert len(smaller.load()) == 2 and len(list(tmp_path.iterdir())) == 2
    smaller.report_dropped(6.0)
    assert caplog.records[-1].getMessage() == (
        "notification queue full (2): 1 notification(s) dropped"
    )


addresses = st.sampled_from(["a@chat.example", "b@chat.example", "c@chat.example"])
token_lists = st.lists(st.sampled_from(["t1", "t2", "t3", "t4"]), max_size=4, unique=True)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("put"), addresses, token_lists),
        st.tuples(st.just("send"), st.integers(0, 20), outcomes),
    ),
    max_size=40,
)


@given(st.integers(1, 6), operations)
def test_queue_invariants(tmp_path_factory, limit, ops):
    """Whatever happens: at most `limit` files, one per (address, token), exactly the
    notifications the queue holds; none of a token queued twice; a restart finds the same."""
    directory = tmp_path_factory.mktemp("queue")
    queue = Queue(directory, limit)
    waiting: dict[str, Pending] = {}
    now = 10.0
    for op in ops:
        now += 1
        if op[0] == "put":
            for p in queue.put(op[1], op[2], now):
                assert p.id not in waiting
                waiting[p.id] = p
        elif waiting:
            ident = sorted(waiting)[op[1] % len(waiting)]
            sent = queue.begin(ident)
            assert sent is not None
            del waiting[ident]
            outcome = op[2] if isinstance(op[2], str) else replace(sent, attempts=1)
            kept = queue.end(sent, outcome, now)
            if kept is not None:
                waiting[kept.id] = kept
        files = names(directory)
        assert len(files) <= limit
        assert files == sorted(ident + ".json" for ident in waiting) and len(queue) == len(files)
    assert {p.id for p in Queue(directory, limit).load()} == set(waiting)


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
    queue = Queue(tmp_path, LIMIT)
    service = FakeService({"flaky": [500, None, 200], "dead": [410]}, delay=0.05)
    forgotten: list[tuple[str, str]] = []
    notifier = Notifier(
        queue, Policy(0.01, 60), service, lambda a, t: forgotten.append((a, t)), concurrency=3
    )
    notifier.start()
    try:
        many = [f"tok{i}" for i in range(20)]
        notifier.notify("a@chat.example", [*many, "flaky", "dead"])
        wait_for(lambda: not list(tmp_path.iterdir()))
    finally:
        notifier.stop()
    assert sorted(service.calls) == sorted([*many, "flaky", "flaky", "flaky", "dead"])
    assert forgotten == [("a@chat.example", "dead")]
    assert service.peak <= 3


def test_notifier_gives_up(tmp_path: Path):
    queue = Queue(tmp_path, LIMIT)
    service = FakeService({"never": [503]})
    notifier = Notifier(queue, Policy(0.01, 0.2), service, lambda a, t: None, concurrency=1)
    notifier.start()
    try:
        notifier.notify("a@chat.example", ["never"])
        wait_for(lambda: not list(tmp_path.iterdir()))
    finally:
        notifier.stop()
    assert 2 <= len(service.calls) <= 10


@pytest.mark.parametrize("answer", [500, None])
def test_a_stopped_notifier_keeps_what_is_pending(tmp_path: Path, answer):
    queue = Queue(tmp_path, LIMIT)
    service = FakeService({"later": [answer]})
    notifier = Notifier(queue, Policy(30, 600), service, lambda a, t: None)
    notifier.start()
    notifier.notify("a@chat.example", ["later"])
    wait_for(lambda: service.calls)
    notifier.stop()
    (kept,) = queue.load()
    assert (kept.token, kept.attempts) == ("later", 1)


def test_a_flood_while_the_service_fails_stays_one_file_per_token(tmp_path: Path):
    """10 tokens, 100 messages, the service answering 500: 10 files (not 1,000), each
    retried on its own schedule; when the service answers again, one 200 each."""
    tokens = [f"tok{i}" for i in range(10)]
    service = FakeService({t: [500] for t in tokens})
    queue = Queue(tmp_path, LIMIT)
    notifier = Notifier(queue, Policy(0.05, 600), service, lambda a, t: None, concurrency=4)
    notifier.start()
    most = 0
    try:
        for _ in range(100):
            notifier.notify("a@chat.example", tokens)
            most = max(most, len(list(tmp_path.glob("*.json"))))
        assert len(list(tmp_path.glob("*.json"))) == 10
        wait_for(lambda: len(service.calls) >= 30)  # retries are under way
        with service.lock:
            service.script.clear()
        wait_for(lambda: not list(tmp_path.iterdir()))
    finally:
        notifier.stop()
    assert most <= 10
    assert sorted(set(service.calls)) == tokens
    assert len(service.calls) < 100  # one per try, not one per message


def test_a_message_during_a_post_is_notified_after_it(tmp_path: Path):
    release = threading.Event()
    calls: list[str] = []

    def post(token: str) -> int:
        calls.append(token)
        if len(calls) == 1:
            assert release.wait(10)
        return 200

    queue = Queue(tmp_path, LIMIT)
    notifier = Notifier(queue, Policy(30, 600), post, lambda a, t: None)
    notifier.start()
    try:
        notifier.notify("a@chat.example", ["tok"])
        wait_for(lambda: calls)
        notifier.notify("a@chat.example", ["tok"])  # the first POST is still under way
        notifier.notify("a@chat.example", ["tok"])
        release.set()
        wait_for(lambda: not list(tmp_path.iterdir()))
    finally:
        notifier.stop()
    assert calls == ["tok", "tok"]


def test_a_failed_put_leaves_nothing_behind(tmp_path: Path, monkeypatch):
    """A write that fails (a full disk) fails the commit and leaves no notification in the
    index that nothing would ever send and that would absorb the next message's."""
    queue = Queue(tmp_path, LIMIT)

    def full(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(queue, "_sync_dir", full)
    with pytest.raises(OSError):
        queue.put("a@chat.example", ["t1", "t2"], now=1.0)
    assert len(queue) == 0 and list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    assert [p.token for p in queue.put("a@chat.example", ["t1"], now=2.0)] == ["t1"]


def test_a_failed_update_after_a_post_keeps_the_notification_going(tmp_path: Path, monkeypatch):
    queue = Queue(tmp_path, LIMIT)
    (first,) = queue.put("a@chat.example", ["tok"], now=1.0)
    sent = queue.begin(first.id)

    def full(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(queue, "_write", full)
    retry = nq.after_attempt(sent, 500, 2.0, POLICY)
    assert queue.end(sent, retry, 2.0) == retry  # scheduled again; the old file stays
    assert queue.begin(first.id) == retry
