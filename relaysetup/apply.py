"""Carrying out a plan on a tree: backups, atomic writes, the checks, restore or reload.

Every file that is replaced is first hard-linked to `<file>.chatmail-setup.bak.<time>`; the new
content goes to a temporary file in the same directory (mode and owner set before it is
visible) that is renamed over the old one; a secret's backup is then made mode 0600. Then
every part's checks run; if one fails, every file goes back as it was (backups renamed back,
new files removed, modes and owners restored) and nothing is reloaded. Only when all checks
pass are old backups pruned (the newest BACKUPS_KEPT of each file stay) and the changed parts
reloaded.
"""

from __future__ import annotations

import grp
import os
import pty
import pwd
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .model import Change, Current, Desired, Plan

BACKUP_INFIX = ".chatmail-setup.bak."
BACKUPS_KEPT = 5  # per file: older backups are removed after a run (docs/setup.md)
SECRET_BACKUP_MODE = 0o600

Runner = Callable[[Sequence[str]], tuple[int, str]]


def target(root: Path, path: str) -> Path:
    """`path` of the target system inside `root`."""
    return root / path.lstrip("/")


def read_current(root: Path) -> Callable[[str], Current]:
    """A reader of the files as they are under `root`."""

    def read(path: str) -> Current:
        file = target(root, path)
        try:
            stat = file.stat()
            return Current(file.read_bytes(), stat.st_mode & 0o7777, stat.st_uid, stat.st_gid)
        except FileNotFoundError:
            return Current(None)

    return read


def owner_ids(desired: Desired) -> tuple[int, int]:
    """(uid, gid) of the desired owner and group; KeyError names the missing one."""
    try:
        uid = pwd.getpwnam(desired.owner).pw_uid
    except KeyError:
        raise KeyError(f"{desired.path}: no user {desired.owner!r}") from None
    try:
        gid = grp.getgrnam(desired.group).gr_gid
    except KeyError:
        raise KeyError(f"{desired.path}: no group {desired.group!r}") from None
    return uid, gid


def run_command(argv: Sequence[str]) -> tuple[int, str]:
    """Run argv; return its exit status and what it wrote to stderr.

    stderr is a pseudo-terminal: `postfix check` reports its fatal errors only to a terminal
    (and to syslog) and would otherwise fail without a word.
    """
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave
        )
    except OSError as exc:
        os.close(master)
        os.close(slave)
        return 127, f"{argv[0]}: {exc.strerror}"
    os.close(slave)
    output = b""
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: every writer has closed the terminal
            break
        if not data:
            break
        output += data
    os.close(master)
    return proc.wait(), output.decode("utf-8", "replace").replace("\r\n", "\n")


@dataclass
class Applied:
    """One applied change and how to undo it."""

    change: Change
    file: Path
    backup: Path | None


def _write_atomic(file: Path, desired: Desired, ids: tuple[int, int] | None) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    temp = file.with_name(f".{file.name}.chatmail-setup.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        if ids is not None:
            os.fchown(fd, *ids)
        os.fchmod(fd, desired.mode)
        os.write(fd, desired.content)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.rename(temp, file)
    except OSError:
        temp.unlink(missing_ok=True)
        raise


def apply_change(
    root: Path, change: Change, stamp: str, ids: tuple[int, int] | None, backups: bool = True
) -> Applied:
    """Carry out one change (a backup first when a file is replaced)."""
    file = target(root, change.desired.path)
    backup = None
    if change.write:
        if change.current.content is not None and backups:
            backup = file.with_name(f"{file.name}{BACKUP_INFIX}{stamp}")
            os.link(file, backup)
        try:
            _write_atomic(file, change.desired, ids)
        except OSError:
            if backup is not None:
                backup.unlink(missing_ok=True)
            raise
        if backup is not None and change.desired.secret:
            os.chmod(backup, SECRET_BACKUP_MODE)  # the old file's inode now has this name only
    else:
        if change.fix_owner and ids is not None:
            os.chown(file, *ids)
        if change.fix_mode:
            os.chmod(file, change.desired.mode)
    return Applied(change, file, backup)


def undo(applied: Applied) -> None:
    """Put one file back as it was before `apply_change`."""
    current = applied.change.current
    if applied.change.write:
        if applied.backup is not None:
            os.rename(applied.backup, applied.file)
            if current.mode is not None:
                os.chmod(applied.file, current.mode)
        elif current.content is None:
            applied.file.unlink(missing_ok=True)
        return
    if current.uid is not None and current.gid is not None:
        os.chown(applied.file, current.uid, current.gid)
    if current.mode is not None:
        os.chmod(applied.file, current.mode)


def timestamp() -> str:
    """UTC time to the microsecond: backup names sort by age, two runs never collide."""
    now = time.time_ns() // 1000
    seconds, micro = divmod(now, 1_000_000)
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(seconds)) + f".{micro:06d}"


def prune_backups(file: Path, keep: int = BACKUPS_KEPT) -> list[Path]:
    """Remove all but the newest `keep` backups of `file`; return what was removed."""
    prefix = f"{file.name}{BACKUP_INFIX}"
    backups = sorted(
        (path for path in file.parent.iterdir() if path.name.startswith(prefix)),
        key=lambda path: path.name,
    )
    old = backups[: max(len(backups) - keep, 0)]
    for path in old:
        path.unlink(missing_ok=True)
    return old


def apply_plan(
    plan: Plan,
    root: Path,
    ids_of: Callable[[Desired], tuple[int, int] | None],
    run: Runner = run_command,
    checks: bool = True,
    reloads: bool = True,
    backups: bool = True,
) -> list[str]:
    """Apply, check, then reload or restore. Returns the problems, one line each (none: done)."""
    stamp = timestamp()
    applied: list[Applied] = []
    try:
        for change in plan.changes:
            applied.append(apply_change(root, change, stamp, ids_of(change.desired), backups))
    except OSError as exc:
        for done in reversed(applied):
            undo(done)
        return [f"{exc.filename}: {exc.strerror}; nothing changed"]
    problems = []
    if checks:
        for part in plan.parts:
            for argv in part.checks:
                status, output = run(argv)
                if status != 0:
                    lines = [line.strip() for line in output.splitlines() if line.strip()]
                    problems.extend(
                        f"{part.name}: {' '.join(argv)}: {line}"
                        for line in lines or [f"exit status {status}"]
                    )
    if problems:
        for done in reversed(applied):
            undo(done)
        problems.append("every file restored as it was; nothing reloaded")
        return problems
    for done in applied:
        if done.backup is not None:
            prune_backups(done.file)
    if reloads:
        done: set[tuple[str, ...]] = set()
        for part in plan.changed_parts():
            for argv in part.reloads:
                if tuple(argv) in done:
                    continue  # two parts of one service: reloaded once
                done.add(tuple(argv))
                status, output = run(argv)
                if status != 0:
                    reason = " ".join(output.split()) or f"exit status {status}"
                    problems.append(f"{part.name}: {' '.join(argv)}: {reason}")
    return problems
