"""One dict connection's state and dispatch: dict protocol commands -> account core -> replies.

No I/O of its own beyond the account core: `handle()` returns the reply text, or a `Deferred`
whose slow part (account creation, iteration) the server runs in a worker thread.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from chatmail_services import dictproto
from chatmail_services.dictserver import Deferred

from . import accounts
from .accounts import Result, Settings, Status
from .metrics import AuthMetrics

log = logging.getLogger("chatmail.auth")

AUTH_DICT = "auth"
LASTLOGIN_DICT = "lastlogin"
PASSDB_PREFIX = "shared/passdb/"
USERDB_PREFIX = "shared/userdb/"
LASTLOGIN_PREFIX = "shared/last-login/"


_ENCODER = json.JSONEncoder(separators=(",", ":"))  # ASCII only: no raw control characters


def _json(fields: dict[str, Any]) -> str:
    return _ENCODER.encode(fields)


def result_reply(result: Result) -> str:
    """The dict reply for a core lookup result."""
    if result.status is Status.FOUND:
        return dictproto.ok(_json(result.fields))
    if result.status is Status.TEMPFAIL:
        log.warning("lookup failed temporarily: %s", result.reason)
        return dictproto.fail(result.reason)
    return dictproto.NOT_FOUND


@dataclass
class Session:
    """Per-connection state: the dict name from the hello line and open transactions."""

    settings: Settings
    name: str | None = None
    transactions: dictproto.Transactions = field(default_factory=dictproto.Transactions)
    metrics: AuthMetrics | None = None  # None: no metrics ([chatmail] metrics_dir empty)

    def handle(self, line: str) -> str | Deferred | None:
        """Serve one line; return the reply, a `Deferred`, or None when no reply is due."""
        cmd = dictproto.parse_line(line)
        if isinstance(cmd, dictproto.Lookup):
            return self._lookup(cmd.key)
        if isinstance(cmd, dictproto.Hello):
            if cmd.name not in (AUTH_DICT, LASTLOGIN_DICT):
                log.warning("hello for unknown dict %r: its lookups will fail", cmd.name)
            self.name = cmd.name
            return None
        if self.transactions.track(cmd):
            return None
        if isinstance(cmd, dictproto.Commit):
            return self._commit(cmd.tid)
        if isinstance(cmd, dictproto.Iterate):
            return self._iterate(cmd)
        log.info("bad dict line: %s", cmd.reason)
        return dictproto.fail(cmd.reason) if cmd.reply_due else None

    def _lookup(self, key: str) -> str | Deferred:
        settings = self.settings
        if self.name == AUTH_DICT:
            if key.startswith(PASSDB_PREFIX):
                parts = dictproto.split_passdb_key(key[len(PASSDB_PREFIX) :])
                if parts is None:
                    return dictproto.fail("malformed passdb key")
                password, user = parts
                started = time.perf_counter()
                result = accounts.lookup_passdb(settings, user, password, create=False)
                if result.status is Status.CREATABLE:
                    return Deferred(
                        lambda: accounts.lookup_passdb(settings, user, password),
                        lambda created: self._created(created, started),
                    )
                log.debug("passdb %s: %s", user, result.status.value)
                self._count(result, started)
                return result_reply(result)
            if key.startswith(USERDB_PREFIX):
                started = time.perf_counter()
                result = accounts.lookup_userdb(settings, key[len(USERDB_PREFIX) :])
                if self.metrics is not None:
                    self.metrics.latency.observe(time.perf_counter() - started)
                return result_reply(result)
            return dictproto.NOT_FOUND
        if self.name == LASTLOGIN_DICT:
            if key.startswith(LASTLOGIN_PREFIX):
                day = accounts.last_login(settings, key[len(LASTLOGIN_PREFIX) :])
                return dictproto.NOT_FOUND if day is None else dictproto.ok(str(day))
            return dictproto.NOT_FOUND
        return dictproto.fail(f"unknown dict {self.name!r}")

    def _count(self, result: Result, started: float) -> None:
        if self.metrics is not None:
            self.metrics.latency.observe(time.perf_counter() - started)
            self.metrics.passdb_result(result)

    def _created(self, result: Result, started: float) -> str:
        self._count(result, started)
        if result.created:
            log.info("account created")
            log.debug("account created: %s", result.fields.get("home"))
        return result_reply(result)

    def _iterate(self, cmd: dictproto.Iterate) -> str | Deferred:
        if self.name not in (AUTH_DICT, LASTLOGIN_DICT):
            return dictproto.fail(f"unknown dict {self.name!r}")
        if self.name != AUTH_DICT or not USERDB_PREFIX.startswith(cmd.path):
            return dictproto.ITER_END
        settings, limit = self.settings, cmd.max_rows

        def work() -> list[str]:
            users = []
            for user in accounts.iter_users(settings):
                if limit and len(users) >= limit:
                    break
                users.append(user)
            return users

        def finish(users: list[str]) -> str:
            rows = [dictproto.iter_row(USERDB_PREFIX + user) for user in users]
            return "".join(rows) + dictproto.ITER_END

        return Deferred(work, finish)

    def _commit(self, tid: str) -> str:
        transaction = self.transactions.pop(tid, None)
        if transaction is None:
            return dictproto.NOT_FOUND
        changes = transaction.changes
        if self.name != LASTLOGIN_DICT:
            if changes:
                return dictproto.commit_fail(tid, f"dict {self.name!r} is read-only")
            return dictproto.ok()
        for change in changes:
            if change.op == "S" and change.key.startswith(LASTLOGIN_PREFIX):
                user = change.key[len(LASTLOGIN_PREFIX) :]
                try:
                    accounts.record_last_login(self.settings, user)
                except OSError as exc:
                    return dictproto.commit_fail(tid, f"cannot record last login: {exc.strerror}")
                if self.metrics is not None:
                    self.metrics.logins.inc()
        return dictproto.ok()
