"""Build synthetic relay trees for the reaper tests, as Dovecot and the auth responder would.

Message files get Dovecot names (`<time>.<unique>,S=<size>,W=<vsize>[:2,<flags>]`) and an
mtime equal to the delivery time (set with `os.utime`, as a real delivery leaves it). The
last login is the password file's mtime at UTC-day granularity (`layout.day_start`).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path

from chatmail_services.layout import DAY, PASSWORD_FILE, day_start

NOW = 1_790_000_000  # a fixed clock for the library-level tests (2026-09-21 UTC)
_counter = itertools.count(1)


def dovecot_name(delivered: int, size: int, box: str, flags: str = "S") -> str:
    unique = f"M{next(_counter)}P{os.getpid()}.testhost"
    base = f"{delivered}.{unique},S={size},W={size + 2}"
    return f"{base}:2,{flags}" if box == "cur" else base


@dataclass
class Relay:
    """A relay's mailboxes_dir under construction; `now` is the clock ages refer to."""

    root: Path
    now: int = NOW
    made: list[Path] = field(default_factory=list)

    def account(
        self, address: str, login_days_ago: float | None = 1, folders: tuple[str, ...] = ()
    ) -> Path:
        """An account as the auth responder and Dovecot leave it; no password if None."""
        home = self.root / address
        for folder in ("", *folders):
            base = home / folder if folder else home
            for box in ("cur", "new", "tmp"):
                (base / box).mkdir(parents=True, exist_ok=True)
            self.file(base / "dovecot-uidlist", b"3 V1 N1\n", age=400 * DAY)
            self.file(base / "dovecot.index.log", b"\0" * 32, age=400 * DAY)
        if folders:
            self.file(home / "subscriptions", "\n".join(folders).encode(), age=400 * DAY)
        if login_days_ago is not None:
            login = day_start(self.now - login_days_ago * DAY)
            self.file(home / PASSWORD_FILE, b"{SHA512-CRYPT}$6$salt$hash\n", mtime=login)
        return home

    def maildirsize(self, address: str) -> Path:
        return self.file(self.root / address / "maildirsize", b"0S\n0 0\n", age=DAY)

    def message(
        self,
        address: str,
        age: float,
        size: int = 100,
        folder: str = "",
        box: str = "cur",
        named: bool = True,
        flags: str = "S",
    ) -> Path:
        """A message delivered `age` seconds before `now`, `size` bytes long."""
        delivered = int(self.now - age)
        name = dovecot_name(delivered, size, box, flags) if named else f"msg{next(_counter)}"
        base = self.root / address / folder if folder else self.root / address
        return self.file(base / box / name, b"x" * size, mtime=delivered)

    def file(
        self, path: Path, data: bytes, age: float | None = None, mtime: float | None = None
    ) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        when = mtime if mtime is not None else self.now - (age or 0)
        os.utime(path, (when, when))
        self.made.append(path)
        return path


def snapshot(top: Path) -> dict[str, tuple]:
    """Every entry below `top` (never following symlinks): kind, size, mtime, content/target."""
    result: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(top))
            st = path.lstat()
            if path.is_symlink():
                result[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                result[rel] = ("dir",)
            else:
                result[rel] = ("file", st.st_size, st.st_mtime_ns, path.read_bytes())
    return result


@dataclass
class Outcome:
    stats: object
    errors: list[tuple[str, str, OSError]]
    actions: list[tuple[str, str, str]]


def reap(root: Path, policy, now: float, remove: bool = True) -> Outcome:
    """Run one library-level pass over `root`, collecting errors and actions."""
    from chatmail_services.expire.scan import run

    errors: list[tuple[str, str, OSError]] = []
    actions: list[tuple[str, str, str]] = []
    stats = run(
        str(root),
        policy,
        now,
        remove=remove,
        on_error=lambda account, path, exc: errors.append((account, path, exc)),
        on_action=lambda account, verb, what: actions.append((account, verb, what)),
    )
    return Outcome(stats, errors, actions)
