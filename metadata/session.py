"""One dict connection of chatmail-metadata: dict protocol commands -> tokens, server keys,
notifications (`/private/messagenew`, set by Dovecot's LMTP push hook).

Dovecot names the dict in the hello line: `metadata` is what IMAP clients' METADATA commands
reach (tokens, server keys), `push` only the LMTP process (its own `mail_attribute_dict`), where
the push hook sets `/private/messagenew` after a delivery. Only there does that key notify: a
client's SETMETADATA of it arrives on `metadata` and is refused like any read-only key.

Dovecot names the account in the lookup's second field and in the transaction's `B` line;
the mailbox GUID in the key does not matter (tokens are per account, whatever mailbox the
client set them on). An account that does not exist has no tokens and gets none stored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from chatmail_services import dictproto, layout
from chatmail_services.address import account_address, local_part
from chatmail_services.config import Config
from chatmail_services.dictserver import Deferred

from . import appversions, keys, serverkeys, store, tokens
from .metrics import MetadataMetrics
from .serverkeys import Turn

log = logging.getLogger("chatmail.metadata")

METADATA_DICT = "metadata"  # IMAP clients' METADATA (imap processes)
PUSH_DICT = "push"  # the LMTP push hook only (protocol lmtp's mail_attribute_dict)
DICTS = (METADATA_DICT, PUSH_DICT)
MESSAGE_NEW = "messagenew"
Notify = Callable[[str, list[str]], None]


@dataclass(frozen=True)
class Settings:
    mail_domain: str
    mailboxes_dir: str
    max_recipients: int
    max_tokens: int
    max_age: int  # seconds
    iroh_relay: str
    turn: Turn | None
    app_versions_file: str


def settings_from_config(config: Config) -> Settings:
    """Settings for the service; raises `serverkeys.SettingsError` (TURN secret unreadable)."""
    section = config.metadata
    return Settings(
        mail_domain=config.chatmail.mail_domain,
        mailboxes_dir=config.chatmail.mailboxes_dir,
        max_recipients=config.chatmail.max_recipients,
        max_tokens=section.max_tokens,
        max_age=section.token_max_age_days * layout.DAY,
        iroh_relay=section.iroh_relay,
        turn=serverkeys.load_turn(config),
        app_versions_file=section.app_versions_file,
    )


def account_home(settings: Settings, user: str) -> Path | None:
    """The home of an existing account named `user`, or None."""
    local = local_part(settings.mail_domain, user)
    if local is None:
        return None
    home = layout.account_dir(settings.mailboxes_dir, account_address(settings.mail_domain, local))
    return home if home.is_dir() and not home.is_symlink() else None


def server_value(settings: Settings, name: str, now: float) -> str | None:
    if name == "maxsmtprecipients":
        return str(settings.max_recipients)
    if name == "irohrelay":
        return settings.iroh_relay or None
    if name == "turn":
        return serverkeys.turn_credentials(settings.turn, now) if settings.turn else None
    if name == "appversions":
        return appversions.serve(settings.app_versions_file)
    return None


@dataclass
class Session:
    """Per-connection state: the dict name from the hello line and open transactions."""

    settings: Settings
    notify: Notify | None = None  # queue a notification per token of an account
    name: str | None = None
    transactions: dictproto.Transactions = field(default_factory=dictproto.Transactions)
    metrics: MetadataMetrics | None = None  # None: no metrics ([chatmail] metrics_dir empty)

    def handle(self, line: str) -> str | Deferred | None:
        """Serve one line; return the reply, a `Deferred`, or None when no reply is due."""
        cmd = dictproto.parse_line(line)
        if isinstance(cmd, dictproto.Hello):
            if cmd.name not in DICTS:
                log.warning("hello for unknown dict %r: its commands will fail", cmd.name)
            self.name = cmd.name
            return None
        if isinstance(cmd, dictproto.Bad):
            log.info("bad dict line: %s", cmd.reason)
            return dictproto.fail(cmd.reason) if cmd.reply_due else None
        if self.name not in DICTS:
            if isinstance(cmd, (dictproto.Lookup, dictproto.Iterate, dictproto.Commit)):
                return dictproto.fail(f"unknown dict {self.name!r}")
            return None
        if isinstance(cmd, dictproto.Lookup):
            if self.name == PUSH_DICT:
                return dictproto.NOT_FOUND  # the hook only sets; nothing to read there
            return self._lookup(cmd.key, cmd.user)
        if self.transactions.track(cmd):
            return None
        if isinstance(cmd, dictproto.Commit):
            return self._commit(cmd.tid)
        return dictproto.ITER_END  # Iterate: attributes are looked up, never listed

    def _lookup(self, raw_key: str, user: str) -> str:
        key = keys.parse_key(raw_key)
        settings = self.settings
        if isinstance(key, keys.ServerKey):
            value = server_value(settings, key.name, time.time())
            return dictproto.NOT_FOUND if value is None else dictproto.ok(value)
        if keys.is_device_token(key):
            home = account_home(settings, user)
            if home is None:
                return dictproto.NOT_FOUND
            now = int(time.time())
            current = tokens.live(store.read(home), now, settings.max_age)
            return dictproto.ok(tokens.joined(current)) if current else dictproto.NOT_FOUND
        return dictproto.NOT_FOUND

    def _commit(self, tid: str) -> str | Deferred:
        transaction = self.transactions.pop(tid, None)
        if transaction is None:
            return dictproto.NOT_FOUND
        if self.name == PUSH_DICT:
            return self._commit_push(tid, transaction)
        new_tokens = []
        for change in transaction.changes:
            key = keys.parse_key(change.key)
            if not keys.is_device_token(key):
                return dictproto.commit_fail(tid, "this metadata key is read-only")
            if change.op == "U":
                continue  # a device's token is forgotten when it is not set again
            if change.op != "S":
                return dictproto.commit_fail(tid, "device tokens can only be set")
            try:
                new_tokens.append(tokens.validate(change.value))
            except tokens.TokenError as exc:
                log.info("device token refused: %s", exc)
                if self.metrics is not None:
                    self.metrics.tokens_refused.inc()
                return dictproto.commit_fail(tid, str(exc))
        if not new_tokens:
            return dictproto.ok()
        home = account_home(self.settings, transaction.user)
        if home is None:
            return dictproto.commit_fail(tid, "no such account")
        settings, user, metrics = self.settings, transaction.user, self.metrics

        def work() -> str:
            now = int(time.time())

            def change(current: list[tokens.Token]) -> list[tokens.Token]:
                for value in new_tokens:
                    current = tokens.add(current, value, now, settings.max_tokens, settings.max_age)
                return current

            try:
                stored = store.update(home, change)
            except OSError as exc:
                log.error("cannot store a device token: %s", exc.strerror)
                return dictproto.commit_fail(tid, "cannot store the device token")
            log.info("device token stored (%d for the account)", len(stored))
            if metrics is not None:
                metrics.tokens_stored.inc(amount=len(new_tokens))
            log.debug("device token stored for %s", user)
            return dictproto.ok()

        return Deferred(work, lambda reply: reply)

    def _commit_push(self, tid: str, transaction: dictproto.Transaction) -> str | Deferred:
        """The LMTP hook's transaction: `/private/messagenew` set after a delivery, nothing
        else. Queues one notification per live token of the account."""
        message_new = False
        for change in transaction.changes:
            key = keys.parse_key(change.key)
            if not (isinstance(key, keys.PrivateKey) and key.name == MESSAGE_NEW):
                return dictproto.commit_fail(tid, "only the push hook's key is taken here")
            message_new = message_new or change.op == "S"
        if not message_new or self.notify is None:
            return dictproto.ok()
        home = account_home(self.settings, transaction.user)
        if home is None:
            return dictproto.commit_fail(tid, "no such account")
        settings, notify = self.settings, self.notify

        def work() -> str:
            current = tokens.live(store.read(home), int(time.time()), settings.max_age)
            try:
                notify(home.name, [t.value for t in current])
            except OSError as exc:
                log.error("cannot queue a notification: %s", exc.strerror)
                return dictproto.commit_fail(tid, "cannot queue the notification")
            return dictproto.ok()

        return Deferred(work, lambda reply: reply)


def forget_token(settings: Settings, address: str, token: str) -> None:
    """Remove a token the notification service called dead (410)."""
    home = account_home(settings, address)
    if home is not None:
        store.update(home, lambda current: tokens.remove(current, token))
