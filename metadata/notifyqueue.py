"""The pending push notifications: one file per notification in the queue directory, and the
retry rules (pure).

A notification is written (temporary file, fsync, rename) before Dovecot hears that the
message's `/private/messagenew` was taken, and removed only after the notification service
answered for good, so a restart or a kill loses none (at least once; a kill between the answer
and the removal sends that one again).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from dataclasses import dataclass, replace
from pathlib import Path

log = logging.getLogger("chatmail.metadata")

SUFFIX = ".json"


@dataclass(frozen=True)
class Pending:
    id: str
    address: str
    token: str
    first_try: float
    attempts: int = 0
    next_try: float = 0.0


@dataclass(frozen=True)
class Policy:
    retry_base: float  # seconds before the first retry; doubled after each failure
    give_up_after: float  # seconds after the first try
    max_delay: float = 1800.0


DONE, FORGET_TOKEN, GIVE_UP = "done", "forget token", "give up"


def after_attempt(pending: Pending, status: int | None, now: float, policy: Policy):
    """What to do after one POST: DONE (2xx), FORGET_TOKEN (410: the device is gone),
    GIVE_UP (too old), or the `Pending` to try again later (anything else, or no answer)."""
    if status is not None and 200 <= status < 300:
        return DONE
    if status == 410:
        return FORGET_TOKEN
    attempts = pending.attempts + 1
    delay = min(policy.retry_base * 2 ** min(attempts - 1, 40), policy.max_delay)
    if now + delay - pending.first_try > policy.give_up_after:
        return GIVE_UP
    return replace(pending, attempts=attempts, next_try=now + delay)


def encode(pending: Pending) -> bytes:
    fields = {k: getattr(pending, k) for k in Pending.__dataclass_fields__}
    return json.dumps(fields, separators=(",", ":")).encode("ascii")


def decode(data: bytes) -> Pending | None:
    """A queue file's notification, or None if the file is damaged (never raises)."""
    try:
        fields = json.loads(data)
        pending = Pending(
            id=str(fields["id"]),
            address=str(fields["address"]),
            token=str(fields["token"]),
            first_try=float(fields["first_try"]),
            attempts=int(fields["attempts"]),
            next_try=float(fields["next_try"]),
        )
    except (ValueError, KeyError, TypeError):
        return None
    return pending


class Queue:
    """The queue directory (owned by the mail user, only this service writes it)."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)

    def _path(self, pending: Pending) -> Path:
        return self.dir / (pending.id + SUFFIX)

    def _write(self, pending: Pending) -> None:
        final = self._path(pending)
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

    def put(self, address: str, tokens: list[str], now: float | None = None) -> list[Pending]:
        """Queue one notification per token, durably; return them."""
        now = time.time() if now is None else now
        made = []
        for token in tokens:
            ident = f"{time.time_ns():x}-{secrets.token_hex(6)}"
            pending = Pending(ident, address, token, now, 0, now)
            self._write(pending)
            made.append(pending)
        if made:
            self._sync_dir()
        return made

    def save(self, pending: Pending) -> None:
        """Record a retry (the attempt count and the next time)."""
        self._write(pending)

    def remove(self, pending: Pending) -> None:
        self._path(pending).unlink(missing_ok=True)

    def load(self) -> list[Pending]:
        """Every queued notification (at start); damaged and half-written files are removed."""
        found = []
        for path in self.dir.iterdir():
            if path.suffix == ".tmp":
                path.unlink(missing_ok=True)
                continue
            if path.suffix != SUFFIX:
                continue
            pending = decode(path.read_bytes())
            if pending is None or pending.id + SUFFIX != path.name:
                log.warning("damaged notification file removed")
                path.unlink(missing_ok=True)
                continue
            found.append(pending)
        return found
