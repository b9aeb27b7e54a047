"""The device tokens on disk: `<home>/devicetokens`, replaced atomically (temp file, fsync,
rename), so a crash leaves the old or the new list, never half of one.

The service is one process; writes for one account are serialised by a lock chosen by the
address's hash (a fixed set of locks, whatever the number of accounts).
"""

from __future__ import annotations

import os
import threading
import zlib
from collections.abc import Callable
from pathlib import Path

from chatmail_services import layout

from .tokens import Token, format_file, parse_file

MAX_FILE_BYTES = 1 << 20
_LOCKS = tuple(threading.Lock() for _ in range(64))


def read(home: Path) -> list[Token]:
    """The stored tokens (all of them, expired ones too); none if there is no file."""
    path = layout.device_tokens_path(home)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES)
    except FileNotFoundError:
        return []
    return parse_file(data.decode("ascii", "replace"))


def _write(home: Path, tokens: list[Token]) -> None:
    path = layout.device_tokens_path(home)
    if not tokens:
        try:
            path.unlink()
        except FileNotFoundError:
            return
    else:
        tmp = home / f".{layout.DEVICE_TOKENS_FILE}.{os.getpid()}.{threading.get_ident()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, format_file(tokens).encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    dir_fd = os.open(home, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def update(home: Path, change: Callable[[list[Token]], list[Token]]) -> list[Token]:
    """Apply `change` to the stored tokens and store the result; return it."""
    with _LOCKS[zlib.crc32(str(home).encode("utf-8", "surrogateescape")) % len(_LOCKS)]:
        before = read(home)
        after = change(before)
        if after != before:
            _write(home, after)
        return after
