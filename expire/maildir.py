"""Maildir file names: what Dovecot's names tell about a message without a stat.

Dovecot names a message `<unix time>.<unique>,S=<size>,W=<vsize>:2,<flags>` (the `:2,<flags>`
part only in `cur/`). The leading time is when the file was saved into this folder; `S=` is
its size in bytes on disk. Names written by other tools may lack either; the caller then
falls back to `lstat`.
"""

from __future__ import annotations

import re

# The longest leading time accepted: 12 digits reach year 33658; longer is not a time.
_MAX_TIME_DIGITS = 12
# Dovecot's own bookkeeping files: never treated as messages, never deleted by rules 3 to 5.
DOVECOT_FILES = frozenset({"dovecot-uidlist", "dovecot-keywords", "subscriptions", "maildirsize"})
BOXES = ("cur", "new", "tmp")
# Dovecot's own form, `S=` right after the unique part: one regex match, no Python loop.
_DOVECOT_FORM = re.compile(r"(\d{1,12})\.[^,:]*,S=(\d{1,20})(?=[,:]|\Z)", re.ASCII)
# match_dovecot_form(name): groups (time, size) when `name` has Dovecot's own form, else None.
match_dovecot_form = _DOVECOT_FORM.match


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def parse_name(name: str) -> tuple[int | None, int | None]:
    """Return (delivery time, size) read from a Maildir file name; None where absent.

    Only ASCII digits count: `1700000000.M1P2.host,S=1234,W=1260:2,S` gives
    (1700000000, 1234); `msg.eml` gives (None, None). Never raises.
    """
    match = _DOVECOT_FORM.match(name)
    if match:
        return int(match[1]), int(match[2])
    return parse_name_slowly(name)


def parse_name_slowly(name: str) -> tuple[int | None, int | None]:
    """`parse_name` for every form, field by field (the reference for the fast path)."""
    base = name.partition(":")[0]
    head, dot, rest = base.partition(".")
    time = int(head) if dot and 0 < len(head) <= _MAX_TIME_DIGITS and _digits(head) else None
    size = None
    at = rest.find(",S=")
    if at >= 0:
        field = rest[at + 3 :].partition(",")[0]
        if 0 < len(field) <= 20 and _digits(field):
            size = int(field)
    return time, size


def is_dovecot_file(name: str) -> bool:
    """Whether `name` is one of Dovecot's own files (index, uidlist, quota, subscriptions)."""
    return name in DOVECOT_FILES or name.startswith("dovecot.") or name.startswith("dovecot-")
