"""The pending push notifications: at most one file per account and device token in the
queue directory, at most `limit` files, and the rules (pure) for coalescing and retrying.

A notification wakes a device, which then fetches whatever has arrived: one that is still
pending for a token stands for every later message to that account too, so a new message
only moves its time (`since`) forward, in memory. A message that arrives while the token's
POST is under way is remembered and gets a notification of its own after that POST (the
device may have fetched before the message was stored).

A new notification is written (temporary file, fsync, rename, directory fsync) before
Dovecot hears that `/private/messagenew` was taken, and removed only after the notification
service answered for good, so a restart or a kill loses none (at least once; a kill between
the answer and the removal sends that one again). When the queue holds `limit` notifications,
one for a further token is dropped and counted: the count is logged at once, then at most every
`REPORT_EVERY` seconds (counts only: no token, no address).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

log = logging.getLogger("chatmail.metadata")

SUFFIX = ".json"
REPORT_EVERY = 60.0  # seconds between two log lines about dropped notifications


def log_dropped(limit: int, count: int) -> None:
    if count:
        log.info("notification queue full (%d): %d notification(s) dropped", limit, count)


def key_id(address: str, token: str) -> str:
    """The file name (without suffix) of the notification for `token` of `address`."""
    return hashlib.sha256(f"{address}\0{token}".encode("utf-8", "surrogateescape")).hexdigest()[:32]


@dataclass(frozen=True)
class Pending:
    address: str
    token: str
    since: float  # the newest message it stands for; given up `give_up_after` after it
    attempts: int = 0
    next_try: float = 0.0

    @property
    def id(self) -> str:
        return key_id(self.address, self.token)


@dataclass(frozen=True)
class Policy:
    retry_base: float  # seconds before the first retry; doubled after each failure
    give_up_after: float  # seconds after the newest message it stands for
    max_delay: float = 1800.0


DONE, FORGET_TOKEN, GIVE_UP = "done", "forget token", "give up"
Outcome = Pending | str


def after_attempt(pending: Pending, status: int | None, now: float, policy: Policy) -> Outcome:
    """What to do after one POST: DONE (2xx), FORGET_TOKEN (410: the device is gone),
    GIVE_UP (too old), or the `Pending` to try again later (anything else, or no answer)."""
    if status is not None and 200 <= status < 300:
        return DONE
    if status == 410:
        return FORGET_TOKEN
    attempts = pending.attempts + 1
    delay = min(policy.retry_base * 2 ** min(attempts - 1, 40), policy.max_delay)
    if now + delay - pending.since > policy.give_up_after:
        return GIVE_UP
    return replace(pending, attempts=attempts, next_try=now + delay)


def settle(sent: Pending, outcome: Outcome, again: float | None, now: float) -> Pending | None:
    """What stays queued for the token after an attempt; `again` is the time of a message
    that arrived during the POST (None if none did). None: nothing stays."""
    if outcome == FORGET_TOKEN:
        return None  # a dead token cannot be woken for the later message either
    if isinstance(outcome, Pending):
        return outcome if again is None else replace(outcome, since=again)
    if again is None:
        return None
    return replace(sent, since=again, attempts=0, next_try=now)  # the later message's own


def encode(pending: Pending) -> bytes:
    fields = {k: getattr(pending, k) for k in Pending.__dataclass_fields__}
    return json.dumps(fields, separators=(",", ":")).encode("ascii")


def decode(data: bytes) -> Pending | None:
    """A queue file's notification, or None if the file is damaged (never raises)."""
    try:
        fields = json.loads(data)
        pending = Pending(
            address=_text(fields["address"]),
            token=_text(fields["token"]),
            since=float(fields["since"] if "since" in fields else fields["first_try"]),
            attempts=int(fields["attempts"]),
            next_try=float(fields["next_try"]),
        )
    except (ValueError, KeyError, TypeError, OverflowError):
        return None
    return pending


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("not a string")
    return value


@dataclass
class _Slot:
    pending: Pending
    in_flight: bool = False
    again: float | None = None


class Queue:
    """The queue directory (owned by the mail user, only this service writes it) and its
    index in memory: one slot per (address, token)."""

    def __init__(self, directory: str | Path, limit: int) -> None:
        self.dir = Path(directory)
        self.limit = limit
        self._lock = threading.Lock()  # the index and the drop count
        self._key_locks = tuple(threading.Lock() for _ in range(64))  # one key's file
        self._slots: dict[str, _Slot] = {}
        self._dropped = 0
        self.dropped_total = 0  # every drop since the start (metrics)
        self._next_report = 0.0

    def __len__(self) -> int:
        with self._lock:
            return len(self._slots)

    def oldest_age(self, now: float) -> float:
        """Seconds since the message of the longest-waiting notification (0: none waits)."""
        with self._lock:
            oldest = min((slot.pending.since for slot in self._slots.values()), default=now)
        return max(0.0, now - oldest)

    def _key_lock(self, ident: str) -> threading.Lock:
        return self._key_locks[zlib.crc32(ident.encode("ascii")) % len(self._key_locks)]

    def _path(self, ident: str) -> Path:
        return self.dir / (ident + SUFFIX)

    def _write(self, pending: Pending) -> None:
        final = self._path(pending.id)
        tmp = final.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, encode(pending))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)

    def _sync_dir(self) -> None:
        fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def put(self, address: str, tokens: list[str], now: float) -> list[Pending]:
        """A message for `address`: a notification per token, coalesced with one pending
        for the same token, durable before this returns. Return the new ones (to schedule)."""
        made = []
        for token in tokens:
            pending = Pending(address, token, now, 0, now)
            with self._key_lock(pending.id):
                with self._lock:
                    slot = self._slots.get(pending.id)
                    if slot is not None:
                        if slot.in_flight:
                            slot.again = now
                        else:
                            slot.pending = replace(slot.pending, since=now)
                        continue
                    if len(self._slots) >= self.limit:
                        self._dropped += 1
                        self.dropped_total += 1
                        report = self._due_report(now)
                    else:
                        self._slots[pending.id] = _Slot(pending)
                        report = None
                if report is not None:
                    log_dropped(self.limit, report)
                    continue
                made.append(pending)
                try:
                    self._write(pending)
                except OSError:
                    self._undo(made)
                    raise
        try:
            if made:
                self._sync_dir()
        except OSError:
            self._undo(made)
            raise
        return made

    def _undo(self, made: list[Pending]) -> None:
        """Forget what a failed `put` added (its caller schedules none of it)."""
        for pending in made:
            with self._lock:
                self._slots.pop(pending.id, None)
            self._path(pending.id).unlink(missing_ok=True)

    def begin(self, ident: str) -> Pending | None:
        """Take the notification `ident` for sending; None if there is none waiting."""
        with self._lock:
            slot = self._slots.get(ident)
            if slot is None or slot.in_flight:
                return None
            slot.in_flight = True
            return slot.pending

    def end(self, sent: Pending, outcome: Outcome, now: float) -> Pending | None:
        """Record an attempt's outcome on disk; return what stays queued (to schedule)."""
        with self._key_lock(sent.id):
            with self._lock:
                again = self._slots[sent.id].again
            kept = settle(sent, outcome, again, now)
            try:
                if kept is None:
                    self._path(sent.id).unlink(missing_ok=True)
                else:
                    self._write(kept)
            except OSError as exc:  # the old file stays: sent again after a restart
                log.error("cannot update a queued notification: %s", exc.strerror)
            with self._lock:
                if kept is None:
                    del self._slots[sent.id]
                else:
                    self._slots[sent.id] = _Slot(kept)
            return kept

    def _due_report(self, now: float) -> int:
        """The drops to log now (0: none, or not yet due); the caller holds `_lock`."""
        if now < self._next_report or not self._dropped:
            return 0
        count, self._dropped = self._dropped, 0
        self._next_report = now + REPORT_EVERY
        return count

    def report_dropped(self, now: float, force: bool = False) -> None:
        """Log the drops not logged yet, if due (or `force`: at stop)."""
        with self._lock:
            if force:
                self._next_report = 0.0
            count = self._due_report(now)
        log_dropped(self.limit, count)

    def load(self) -> list[Pending]:
        """Every queued notification (at start): damaged and half-written files are removed,
        two files for one token become one, and files beyond `limit` are dropped (counted)."""
        found: dict[str, Pending] = {}
        for path in sorted(self.dir.iterdir()):
            if path.suffix == ".tmp":
                path.unlink(missing_ok=True)
                continue
            if path.suffix != SUFFIX:
                continue
            pending = decode(path.read_bytes())
            if pending is None:
                log.warning("damaged notification file removed")
                path.unlink(missing_ok=True)
                continue
            if pending.id in found:
                pending = replace(pending, since=max(pending.since, found[pending.id].since))
            elif len(found) >= self.limit:
                self._dropped += 1  # logged by the first report_dropped
                self.dropped_total += 1
                path.unlink(missing_ok=True)
                continue
            if path.name != pending.id + SUFFIX:  # a second file for a token
                self._write(pending)
                path.unlink(missing_ok=True)
            found[pending.id] = pending
        with self._lock:
            self._slots = {ident: _Slot(p) for ident, p in found.items()}
        return list(found.values())
