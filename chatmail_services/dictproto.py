"""Dovecot's dict protocol (2.3.17+ v3, 2.4 v4): line parsing, escaping, reply formatting.

Pure functions on `str`: the server decodes each line with UTF-8 `surrogateescape`, so every
byte survives the round trip to the account core and back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

_ESCAPES = {"\x01": "\x011", "\t": "\x01t", "\r": "\x01r", "\n": "\x01n"}
_UNESCAPES = {"1": "\x01", "t": "\t", "r": "\r", "n": "\n"}
SUPPORTED_MAJOR = (3, 4)


def tab_escape(text: str) -> str:
    """Dovecot's str_tabescape: \\001, TAB, CR, LF become \\001 followed by 1, t, r, n."""
    if not any(ch in text for ch in "\x01\t\r\n"):
        return text
    return "".join(_ESCAPES.get(ch, ch) for ch in text)


def tab_unescape(text: str) -> str:
    """Inverse of `tab_escape`; \\001 before another character yields that character."""
    if "\x01" not in text:
        return text
    out = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\x01" and i + 1 < n:
            nxt = text[i + 1]
            out.append(_UNESCAPES.get(nxt, nxt))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def split_fields(line: str) -> list[str]:
    """Split a line (without its LF) at TABs and unescape each field."""
    return [tab_unescape(f) for f in line.split("\t")]


def split_passdb_key(rest: str) -> tuple[str, str] | None:
    """Split `<%E password>"<%E user>` at the first unescaped `"`; None if there is none."""
    if "\\" not in rest:  # the common case: nothing escaped
        password, sep, user = rest.partition('"')
        return (password, user) if sep else None
    i, n = 0, len(rest)
    while i < n:
        if rest[i] == "\\":
            i += 2
        elif rest[i] == '"':
            return _unescape_e(rest[:i]), _unescape_e(rest[i + 1 :])
        else:
            i += 1
    return None


def _unescape_e(text: str) -> str:
    """Undo Dovecot's `%E` (a backslash before `"`, `'` and `\\`): drop each escaping one."""
    if "\\" not in text:
        return text
    out = []
    i, n = 0, len(text)
    while i < n:
        if text[i] == "\\" and i + 1 < n:
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


# -- commands --


@dataclass(frozen=True)
class Hello:
    major: int
    minor: int
    value_type: str
    user: str
    name: str


@dataclass(frozen=True)
class Lookup:
    key: str
    user: str


@dataclass(frozen=True)
class Iterate:
    flags: int
    max_rows: int
    path: str
    user: str


@dataclass(frozen=True)
class Begin:
    tid: str
    user: str


@dataclass(frozen=True)
class Change:
    """S (set), U (unset), A (increment) or T (timestamp) inside a transaction."""

    op: str
    tid: str
    key: str
    value: str


@dataclass(frozen=True)
class Commit:
    tid: str


@dataclass(frozen=True)
class Rollback:
    tid: str


@dataclass(frozen=True)
class Bad:
    """A line that cannot be served; `reply_due` says whether the client waits for an answer."""

    reason: str
    reply_due: bool


Command = Hello | Lookup | Iterate | Begin | Change | Commit | Rollback | Bad


@dataclass
class Transaction:
    """An open transaction: the user of its `B` line and the changes sent since."""

    user: str
    changes: list[Change] = field(default_factory=list)


class Transactions(dict[str, Transaction]):
    """A connection's open transactions by id; `pop(tid)` takes one out at its commit."""

    def track(self, cmd: Command) -> bool:
        """Apply a Begin, Change or Rollback (no reply is due); False for other commands.

        A change or rollback of an unknown transaction is ignored, as Dovecot expects.
        """
        if isinstance(cmd, Begin):
            self[cmd.tid] = Transaction(cmd.user)
        elif isinstance(cmd, Change):
            transaction = self.get(cmd.tid)
            if transaction is not None:
                transaction.changes.append(cmd)
        elif isinstance(cmd, Rollback):
            self.pop(cmd.tid, None)
        else:
            return False
        return True


def _int(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 19 else None


def parse_line(line: str) -> Command:
    """Parse one protocol line (LF stripped). Never raises: bad input gives `Bad`."""
    if not line:
        return Bad("empty line", reply_due=True)
    cmd = line[0]
    args = split_fields(line[1:])
    n = len(args)
    if cmd == "H":
        major = _int(args[0])
        if n < 5 or major is None or (minor := _int(args[1])) is None:
            return Bad("malformed hello", reply_due=False)
        if major not in SUPPORTED_MAJOR:
            return Bad(f"unsupported protocol version {major}", reply_due=False)
        return Hello(major, minor, args[2], args[3], args[4])
    if cmd == "L":
        return Lookup(args[0], args[1] if n > 1 else "")
    if cmd == "I":
        flags = _int(args[0])
        rows = _int(args[1]) if n > 1 else None
        if n < 3 or flags is None or rows is None:
            return Bad("malformed iterate", reply_due=True)
        return Iterate(flags, rows, args[2], args[3] if n > 3 else "")
    if cmd == "B":
        if not args[0]:
            return Bad("malformed begin", reply_due=False)
        return Begin(args[0], args[1] if n > 1 else "")
    if cmd in ("S", "U", "A", "T"):
        needed = 2 if cmd == "U" else 3
        if n < needed or not args[0]:
            return Bad(f"malformed {cmd} line", reply_due=False)
        return Change(cmd, args[0], args[1], args[2] if needed == 3 else "")
    if cmd in ("C", "D"):
        if not args[0]:
            return Bad("malformed commit", reply_due=True)
        return Commit(args[0])
    if cmd == "R":
        return Rollback(args[0])
    return Bad(f"unknown command {cmd!r}", reply_due=True)


# -- replies --


def ok(value: str = "") -> str:
    return "O" + tab_escape(value) + "\n"


NOT_FOUND = "N\n"


def fail(error: str = "") -> str:
    return "F" + tab_escape(error) + "\n"


def commit_fail(tid: str, error: str) -> str:
    """A failed commit: Dovecot reads the error from the field after the id."""
    return "F" + tab_escape(tid) + "\t" + tab_escape(error) + "\n"


def iter_row(key: str, value: str = "") -> str:
    return "O" + tab_escape(key) + "\t" + tab_escape(value) + "\n"


ITER_END = "\n"
