"""The reaper's I/O: one streaming pass over `mailboxes_dir`, applying `rules.py`.

Every directory is opened relative to its parent's descriptor with `O_NOFOLLOW`, so a
symlink (planted, or swapped in during the run) is never followed and the pass never
leaves `mailboxes_dir`. Accounts are streamed from `os.scandir`; only one account's
listing is held at a time. Files that vanish meanwhile (Dovecot expunging) are skipped.
Only entries this pass listed are deleted, and only when `remove` is true.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from chatmail_services.address import NON_ACCOUNT_PREFIX
from chatmail_services.layout import PASSWORD_FILE

from .maildir import BOXES, is_dovecot_file, match_dovecot_form, parse_name, parse_name_slowly
from .rules import Deletion, Message, Policy, is_inactive, may_remove_empty_dir, plan_messages

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# Not a real directory (a symlink, a file): never descended into, not an error.
_NOT_A_DIR = (errno.ELOOP, errno.ENOTDIR)
_MAX_DEPTH = 32
MAILDIRSIZE = "maildirsize"
# Present while a quota trim is under way in this account: an interrupted trim is resumed.
TRIM_MARKER = "chatmail-expire-trim"
# An inactive account being removed is first renamed to this prefix plus its name. No
# account name starts with NON_ACCOUNT_PREFIX, so no account is ever taken for a tombstone.
TOMBSTONE_PREFIX = NON_ACCOUNT_PREFIX + "expired."

ErrorHandler = Callable[[str, str, OSError], None]  # (account, path in account, error)
ActionHandler = Callable[[str, str, str], None]  # (account, verb, what): "delete", "x (age)"


@dataclass
class Stats:
    """What one pass did (or, in a dry run, would do)."""

    accounts_scanned: int = 0
    accounts_removed: int = 0
    messages_removed: int = 0
    bytes_removed: int = 0
    messages_by_rule: dict[str, int] = field(
        default_factory=lambda: {"inactive": 0, "age": 0, "large": 0, "quota": 0}
    )
    empty_dirs_removed: int = 0
    dirs_without_password: int = 0
    errors: int = 0


@dataclass
class _Pass:
    policy: Policy
    now: float
    remove: bool
    on_error: ErrorHandler
    on_action: ActionHandler | None
    stats: Stats = field(default_factory=Stats)

    def error(self, account: str, path: str, exc: OSError) -> None:
        self.stats.errors += 1
        self.on_error(account, path, exc)

    def action(self, account: str, verb: str, what: str) -> None:
        if self.on_action is not None:
            self.on_action(account, verb, what)


def _open_dir(name: str, dir_fd: int) -> int | None:
    """Open a subdirectory without following symlinks; None if it is gone or no directory."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno in _NOT_A_DIR:
            return None
        raise


def run(
    mailboxes_dir: str,
    policy: Policy,
    now: float,
    *,
    remove: bool,
    on_error: ErrorHandler,
    on_action: ActionHandler | None = None,
    accounts: list[str] | None = None,
) -> Stats:
    """One pass over all accounts (or only over `accounts`, directory names under
    `mailboxes_dir`); `now` is UTC epoch seconds. Never raises OSError.

    `on_error` gets each entry that could not be processed; `on_action`, if given, each
    deletion or removal (done, or in a dry run, due).
    """
    state = _Pass(policy, now, remove, on_error, on_action)
    try:
        root_fd = os.open(mailboxes_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        state.error("", mailboxes_dir, exc)
        return state.stats
    if accounts is not None:
        try:
            for name in accounts:
                if "/" in name or name in ("", ".", "..") or name.startswith(TOMBSTONE_PREFIX):
                    state.error(name, "", OSError(errno.EINVAL, "not an account name"))
                    continue
                state.stats.accounts_scanned += 1
                try:
                    _account(state, root_fd, name)
                except OSError as exc:
                    state.error(name, "", exc)
        finally:
            os.close(root_fd)
        return state.stats
    try:
        with os.scandir(root_fd) as accounts:
            for entry in accounts:
                if not entry.is_dir(follow_symlinks=False):
                    continue
                if entry.name.startswith(TOMBSTONE_PREFIX):
                    try:
                        _finish_tombstone(state, root_fd, entry.name)
                    except OSError as exc:
                        state.error(entry.name.removeprefix(TOMBSTONE_PREFIX), "", exc)
                    continue
                state.stats.accounts_scanned += 1
                try:
                    _account(state, root_fd, entry.name)
                except OSError as exc:
                    state.error(entry.name, "", exc)
    except OSError as exc:
        state.error("", mailboxes_dir, exc)
    finally:
        os.close(root_fd)
    return state.stats


def _account(state: _Pass, root_fd: int, name: str) -> None:
    fd = _open_dir(name, root_fd)
    if fd is None:
        return
    try:
        try:
            last_login: float | None = os.stat(
                PASSWORD_FILE, dir_fd=fd, follow_symlinks=False
            ).st_mtime
        except FileNotFoundError:
            last_login = None
        if last_login is None:
            _without_password(state, root_fd, name, fd)
        elif is_inactive(last_login, state.now, state.policy):
            _remove_account(state, root_fd, name, fd)
        else:
            messages, resume_trim = list_messages(state, name, fd)
            deletions = plan_messages(messages, state.now, state.policy, resume_trim)
            if deletions or (resume_trim and state.remove):
                _delete(state, name, fd, deletions, resume_trim)
    finally:
        os.close(fd)


# -- rule 2 --


def _without_password(state: _Pass, root_fd: int, name: str, fd: int) -> None:
    with os.scandir(fd) as it:
        empty = next(it, None) is None
    if not empty:
        state.stats.dirs_without_password += 1
        state.action(name, "leave", "non-empty directory without password file")
        return
    mtime = os.stat(name, dir_fd=root_fd, follow_symlinks=False).st_mtime
    if not may_remove_empty_dir(mtime, state.now):
        return
    if state.remove:
        try:
            os.rmdir(name, dir_fd=root_fd)
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno == errno.ENOTEMPTY:  # something arrived meanwhile: next run decides
                return
            raise
    state.stats.empty_dirs_removed += 1
    state.action(name, "remove", "empty directory without password file")


# -- rules 3 to 5 --


def list_messages(state: _Pass, account: str, fd: int) -> tuple[list[Message], bool]:
    """Every message file in cur/, new/, tmp/ of INBOX and of each `.Folder/`, and whether
    an interrupted quota trim is to be resumed."""
    folders = []
    resume_trim = False
    with os.scandir(fd) as it:
        for e in it:
            if e.name.startswith(".") and e.is_dir(follow_symlinks=False):
                folders.append(e.name)
            elif e.name == TRIM_MARKER:
                resume_trim = True
    messages: list[Message] = []
    _list_folder(state, account, fd, "", messages)
    for folder in sorted(folders):
        try:
            folder_fd = _open_dir(folder, fd)
        except OSError as exc:
            state.error(account, folder, exc)
            continue
        if folder_fd is not None:
            try:
                _list_folder(state, account, folder_fd, folder, messages)
            finally:
                os.close(folder_fd)
    return messages, resume_trim


def _list_folder(
    state: _Pass, account: str, folder_fd: int, folder: str, out: list[Message]
) -> None:
    append = out.append
    fast_parse = match_dovecot_form
    for box in BOXES:
        where = f"{folder}/{box}" if folder else box
        try:
            box_fd = _open_dir(box, folder_fd)
            if box_fd is None:
                continue
        except OSError as exc:
            state.error(account, where, exc)
            continue
        try:
            with os.scandir(box_fd) as it:
                for entry in it:
                    if not entry.is_file(follow_symlinks=False):
                        continue  # symlinks and directories are no messages
                    name = entry.name
                    match = fast_parse(name)
                    if match:  # the common case, kept short: one regex, no stat
                        append(Message(int(match[1]), int(match[2]), folder, box, name))
                        continue
                    if is_dovecot_file(name):
                        continue
                    time, size = parse_name_slowly(name)
                    if time is None or size is None:
                        try:
                            st = entry.stat(follow_symlinks=False)
                        except FileNotFoundError:
                            continue
                        time = st.st_mtime if time is None else time
                        size = st.st_size if size is None else size
                    append(Message(time, size, folder, box, name))
        except OSError as exc:
            state.error(account, where, exc)
        finally:
            os.close(box_fd)


def _unlink(name: str, dir_fd: int) -> bool:
    """Delete one file; False if it was already gone."""
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    return True


def _mark_trim(fd: int) -> None:
    """Durably record that a quota trim starts, before its first deletion."""
    marker = os.open(TRIM_MARKER, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=fd)  # fmt: skip
    try:
        os.fsync(marker)
    finally:
        os.close(marker)
    os.fsync(fd)


def _delete(
    state: _Pass, account: str, fd: int, deletions: list[Deletion], resume_trim: bool
) -> None:
    """Apply the deletions in plan order; rule 6: drop maildirsize before and after.

    Removing it first means an interrupted run never leaves a stale quota file behind;
    removing it again afterwards covers a recount Dovecot did while we were deleting.
    A quota trim is bracketed by TRIM_MARKER so that a killed trim is finished next time.
    """
    stats = state.stats
    trimming = any(rule == "quota" for _, rule in deletions)
    if state.remove:
        if deletions:
            _unlink(MAILDIRSIZE, fd)
        if trimming and not resume_trim:
            _mark_trim(fd)
    box_fds: dict[tuple[str, str], int | None] = {}
    try:
        for message, rule in deletions:
            if state.remove:
                key = (message.folder, message.box)
                if key not in box_fds:
                    box_fds[key] = _open_box(fd, *key)
                box_fd = box_fds[key]
                try:
                    if box_fd is None or not _unlink(message.name, box_fd):
                        continue
                except OSError as exc:
                    state.error(account, message.path, exc)
                    continue
            stats.messages_removed += 1
            stats.bytes_removed += message.size
            stats.messages_by_rule[rule] += 1
            if state.on_action is not None:
                state.on_action(account, "delete", f"{message.path} ({rule})")
    finally:
        for box_fd in box_fds.values():
            if box_fd is not None:
                os.close(box_fd)
    if state.remove:
        if trimming or resume_trim:
            _unlink(TRIM_MARKER, fd)
        if deletions:
            _unlink(MAILDIRSIZE, fd)


def _open_box(account_fd: int, folder: str, box: str) -> int | None:
    if not folder:
        return _open_dir(box, account_fd)
    folder_fd = _open_dir(folder, account_fd)
    if folder_fd is None:
        return None
    try:
        return _open_dir(box, folder_fd)
    finally:
        os.close(folder_fd)


# -- rule 1 --


def _remove_account(state: _Pass, root_fd: int, name: str, fd: int) -> None:
    """Rule 1: rename the account to a tombstone (freeing the address atomically), then
    empty and remove that. A tombstone an interrupted run left is finished by the next."""
    if not state.remove:
        _clear(state, name, fd, "", depth=0, keep=None)
    else:
        tomb = TOMBSTONE_PREFIX + name
        try:
            os.rename(name, tomb, src_dir_fd=root_fd, dst_dir_fd=root_fd)
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                _remove_in_place(state, root_fd, name, fd)
                return
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            _finish_tombstone(state, root_fd, tomb)  # an old one in the way
            os.rename(name, tomb, src_dir_fd=root_fd, dst_dir_fd=root_fd)
        before = state.stats.errors
        _clear(state, name, fd, "", depth=0, keep=None)
        if state.stats.errors == before:  # else the tombstone stays for the next run
            with contextlib.suppress(FileNotFoundError):
                os.rmdir(tomb, dir_fd=root_fd)
    state.stats.accounts_removed += 1
    state.action(name, "remove", "inactive account")


def _finish_tombstone(state: _Pass, root_fd: int, tomb: str) -> None:
    """Finish removing an account an interrupted run already renamed to `tomb`."""
    fd = _open_dir(tomb, root_fd)
    if fd is None:
        return
    before = state.stats.errors
    try:
        _clear(state, tomb.removeprefix(TOMBSTONE_PREFIX), fd, "", depth=0, keep=None)
    finally:
        os.close(fd)
    if state.remove and state.stats.errors == before:
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(tomb, dir_fd=root_fd)


def _remove_in_place(state: _Pass, root_fd: int, name: str, fd: int) -> None:
    """Rule 1 for a name too long for a tombstone: the password file goes last, so an
    interrupted removal is still an inactive account next time."""
    before = state.stats.errors
    _clear(state, name, fd, "", depth=0, keep=PASSWORD_FILE)
    if state.stats.errors > before:
        return  # keep the password: the next run retries
    _unlink(PASSWORD_FILE, fd)
    try:
        os.rmdir(name, dir_fd=root_fd)
    except FileNotFoundError:
        pass
    except OSError as exc:
        if exc.errno != errno.ENOTEMPTY:
            raise
        _clear(state, name, fd, "", depth=0, keep=None)  # a delivery raced in
        os.rmdir(name, dir_fd=root_fd)
    state.stats.accounts_removed += 1
    state.action(name, "remove", "inactive account")


def _clear(state: _Pass, account: str, fd: int, where: str, depth: int, keep: str | None) -> None:
    """Delete everything below `fd` that this call lists (counting), except `keep`."""
    if depth > _MAX_DEPTH:
        state.error(account, where, OSError(errno.ELOOP, "directory tree too deep"))
        return
    with os.scandir(fd) as it:
        entries = [e for e in it if e.name != keep]
    in_box = where.rpartition("/")[2] in BOXES
    stats = state.stats
    for entry in entries:
        path = f"{where}/{entry.name}" if where else entry.name
        try:
            if entry.is_dir(follow_symlinks=False):
                sub = _open_dir(entry.name, fd)
                if sub is None:
                    continue
                try:
                    _clear(state, account, sub, path, depth + 1, None)
                finally:
                    os.close(sub)
                if state.remove:
                    os.rmdir(entry.name, dir_fd=fd)
                continue
            size = parse_name(entry.name)[1] if in_box else None
            if size is None:
                size = entry.stat(follow_symlinks=False).st_size
            if state.remove and not _unlink(entry.name, fd):
                continue
            stats.bytes_removed += size
            if in_box and not is_dovecot_file(entry.name):
                stats.messages_removed += 1
                stats.messages_by_rule["inactive"] += 1
        except FileNotFoundError:
            continue
        except OSError as exc:
            state.error(account, path, exc)
