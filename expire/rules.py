"""The expiry rules as pure functions: (messages, now, policy) -> what to delete.

No file system access here; `scan.py` lists the tree and applies the result. Times are UTC
seconds since the epoch (what `time.time()` and file times are), so the host's time zone
never enters. Rule numbers refer to the reaper spec (docs/expire.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

from chatmail_services.config import SECTIONS, Config, default
from chatmail_services.layout import DAY, HOUR

# Rule 2: a password-less account directory is removed when empty and older than this, so
# an account being created (directory first, password file next) is never raced.
EMPTY_DIR_GRACE = HOUR


def _option(section: str, name: str, unit: int = 1) -> Any:
    """A `Policy` field: `[section] name` times `unit`; its default is the schema's."""
    return field(
        default_factory=lambda: default(SECTIONS[section], name) * unit,
        metadata={"option": (section, name, unit)},
    )


@dataclass(frozen=True)
class Policy:
    """The thresholds of the rules, in seconds and bytes (defaults: the config schema's)."""

    mails_after: int = _option("expire", "delete_mails_after", DAY)
    large_after: int = _option("expire", "delete_large_after", DAY)
    large_size: int = _option("expire", "large_message_size")
    inactive_after: int = _option("expire", "delete_inactive_users_after", DAY)
    max_mailbox_size: int = _option("chatmail", "max_mailbox_size")
    trim_start_percent: int = _option("expire", "quota_trim_start")
    trim_target_percent: int = _option("expire", "quota_trim_target")
    trim_min_age: int = _option("expire", "quota_trim_min_age_hours", HOUR)

    @classmethod
    def from_config(cls, config: Config) -> Policy:
        """The thresholds `config` sets (the expire service's settings)."""
        values = {}
        for spec in fields(cls):
            section, name, unit = spec.metadata["option"]
            values[spec.name] = getattr(getattr(config, section), name) * unit
        return cls(**values)


class Message(NamedTuple):
    """One message file of an account: folder ("" = INBOX, ".Sent", ...), box, name."""

    time: float  # delivery time (file name), else mtime; UTC epoch seconds
    size: int  # bytes (S= of the name), else st_size
    folder: str
    box: str  # "cur", "new" or "tmp"
    name: str

    @property
    def path(self) -> str:
        """The path relative to the account directory."""
        return f"{self.folder}/{self.box}/{self.name}" if self.folder else f"{self.box}/{self.name}"


class Deletion(NamedTuple):
    message: Message
    rule: str  # "age" (rule 3), "large" (rule 4) or "quota" (rule 5)


def is_inactive(last_login: float, now: float, policy: Policy) -> bool:
    """Rule 1: the last login (password file mtime) is older than the inactivity limit."""
    return now - last_login > policy.inactive_after


def may_remove_empty_dir(mtime: float, now: float) -> bool:
    """Rule 2: an empty password-less directory is removed once past the creation grace."""
    return now - mtime > EMPTY_DIR_GRACE


def expiry_rule(message: Message, now: float, policy: Policy) -> str | None:
    """Rules 3 and 4 for one message: the rule that deletes it, or None.

    The oracle: `plan_messages` applies the same rules inlined in its loop (it runs once per
    message file of the relay), and the tests check it against this plain statement.
    """
    age = now - message.time
    if age > policy.mails_after:
        return "age"
    if message.box == "cur" and message.size > policy.large_size and age > policy.large_after:
        return "large"
    return None


def counts_for_quota(message: Message) -> bool:
    """Dovecot's quota counts delivered mail (cur/ and new/), not files still in tmp/."""
    return message.box != "tmp"


def quota_trim(
    messages: Iterable[Message], now: float, policy: Policy, resume: bool = False
) -> list[Message]:
    """Rule 5: oldest first across all folders, from above start % down to target %.

    `messages` are those left after rules 3 and 4. Returns the messages to delete in
    deletion order (oldest first, ties by path). `resume` continues a trim an earlier run
    began but did not finish (usage may then sit between target and start): it trims from
    above target, so the interrupted run plus this one delete exactly what one would have.
    """
    counted = [m for m in messages if counts_for_quota(m)]
    usage = sum(m.size for m in counted)
    start = policy.trim_target_percent if resume else policy.trim_start_percent
    if usage * 100 <= start * policy.max_mailbox_size:
        return []
    target = policy.trim_target_percent * policy.max_mailbox_size
    eligible = sorted(
        (m for m in counted if now - m.time >= policy.trim_min_age),
        key=lambda m: (m.time, m.path),
    )
    trimmed = []
    for message in eligible:
        if usage * 100 <= target:
            break
        trimmed.append(message)
        usage -= message.size
    return trimmed


def plan_messages(
    messages: Sequence[Message], now: float, policy: Policy, resume_trim: bool = False
) -> list[Deletion]:
    """Rules 3, 4 and 5 for one account, in the order the deletions must happen."""
    deletions = []
    kept = []
    # expiry_rule() inlined (the oracle the tests compare against): once per message file
    mails_after, large_after, large_size = policy.mails_after, policy.large_after, policy.large_size
    for message in messages:
        age = now - message.time
        if age > mails_after:
            deletions.append(Deletion(message, "age"))
        elif message.box == "cur" and message.size > large_size and age > large_after:
            deletions.append(Deletion(message, "large"))
        else:
            kept.append(message)
    trimmed = quota_trim(kept, now, policy, resume_trim)
    deletions.extend(Deletion(m, "quota") for m in trimmed)
    return deletions
