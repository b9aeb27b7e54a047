"""The account rules, protocol-neutral: lookups, creation on first login, last login.

Nothing here knows the dict protocol. Every function takes `Settings` and plain strings and
returns a `Result` (found / not found / temporary failure) or a plain value, so the dict front
end, `checkpassword` and a future Dovecot 2.4 Lua front end share one set of rules.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import os
import pwd
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from chatmail_services import layout
from chatmail_services.address import account_address, address_domain, local_part
from chatmail_services.config import AuthSection, ChatmailSection, Config, SettingsError

from .hashing import HashError, hash_password

MAX_PASSWORD_BYTES = 256


class Status(enum.Enum):
    FOUND = "found"
    NOT_FOUND = "not found"
    TEMPFAIL = "temporary failure"
    # only from lookup_passdb(create=False): unknown, and creation would be attempted
    CREATABLE = "creatable"


@dataclass(frozen=True)
class Result:
    """The answer to a lookup: a status, the reply fields when found, a reason otherwise."""

    status: Status
    fields: dict[str, str | int] = field(default_factory=dict)
    reason: str = ""
    created: bool = False


@dataclass(frozen=True)
class Settings:
    """What the rules need from the configuration, resolved once at start: the `[chatmail]`
    and `[auth]` sections as parsed, and the numeric uid/gid of `mail_user`."""

    chatmail: ChatmailSection
    auth: AuthSection
    uid: int
    gid: int


def settings_from_config(config: Config) -> Settings:
    """Resolve `Settings` from the parsed configuration (mail_user -> numeric uid/gid)."""
    auth = config.auth
    if auth.mail_user:
        try:
            entry = pwd.getpwnam(auth.mail_user)
        except KeyError:
            raise SettingsError(
                f"{config.path}: [auth] mail_user: no such user: {auth.mail_user!r}"
            ) from None
        uid, gid = entry.pw_uid, entry.pw_gid
    else:
        uid, gid = os.getuid(), os.getgid()
    return Settings(config.chatmail, auth, uid, gid)


# -- names and passwords --


def normalize_address(settings: Settings, user: str) -> str | None:
    """`local@domain` in lower case, or None when `user` is not an account name of ours."""
    local = local_part(settings.chatmail.mail_domain, user)
    return None if local is None else account_address(settings.chatmail.mail_domain, local)


def creation_refusal(settings: Settings, local: str, password: str) -> str | None:
    """Why a new account with this local part and password may not exist (None: it may)."""
    if not settings.auth.username_min_length <= len(local) <= settings.auth.username_max_length:
        return "local part length out of range"
    if len(password) < settings.auth.password_min_length:
        return "password too short"
    if len(_password_bytes(password)) > MAX_PASSWORD_BYTES:
        return "password too long"
    if any(ch in password for ch in "\0\t\r\n"):
        return "password contains NUL, TAB, CR or LF"
    return None


def _password_bytes(password: str) -> bytes:
    return password.encode("utf-8", "surrogateescape")


# -- headroom and the kill switch --


def _mem_available() -> int | None:
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def headroom_refusal(settings: Settings) -> str | None:
    """Why no account may be created right now (None: creation is allowed)."""
    if os.path.lexists(settings.auth.nocreate_file):
        return "account creation disabled (nocreate file exists)"
    if os.getloadavg()[0] > settings.auth.max_load_1m:
        return "load too high"
    available = _mem_available()
    if available is not None and available < settings.auth.min_available_memory:
        return "too little available memory"
    try:
        st = os.statvfs(settings.chatmail.mailboxes_dir)
    except OSError:
        return "mailboxes_dir not accessible"
    if st.f_bavail * st.f_frsize < settings.auth.min_free_disk:
        return "too little free disk"
    return None


# -- reading accounts --


def _home(settings: Settings, address: str) -> Path:
    return layout.account_dir(settings.chatmail.mailboxes_dir, address)


def _home_str(settings: Settings, address: str) -> str:
    # the hot path: plain strings, no pathlib (the same path as layout.account_dir)
    return settings.chatmail.mailboxes_dir + "/" + address


def read_hash(settings: Settings, address: str) -> str | None:
    """The stored hash of a (validated) address, or None if it has no complete account."""
    path = _home_str(settings, address) + "/" + layout.PASSWORD_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None
    try:
        data = os.read(fd, 4096)
    finally:
        os.close(fd)
    text = data.decode("ascii", "replace").strip()
    return text or None


def userdb_fields(settings: Settings, address: str) -> dict[str, str | int]:
    """The userdb fields Dovecot needs: home, numeric uid/gid, quota for 2.3 and 2.4."""
    kib = -(-settings.chatmail.max_mailbox_size // 1024)
    return {
        "home": _home_str(settings, address),
        "uid": settings.uid,
        "gid": settings.gid,
        "quota_rule": f"*:storage={kib}",
        "quota_storage_size": settings.chatmail.max_mailbox_size,
    }


def lookup_userdb(settings: Settings, user: str) -> Result:
    """Userdb lookup: the account's fields if it exists; never creates anything."""
    address = normalize_address(settings, user)
    if address is None:
        return Result(Status.NOT_FOUND, reason="not a valid address")
    try:
        stored = read_hash(settings, address)
    except OSError as exc:
        return Result(Status.TEMPFAIL, reason=f"cannot read account: {exc.strerror}")
    if stored is None:
        return Result(Status.NOT_FOUND, reason="no such account")
    return Result(Status.FOUND, userdb_fields(settings, address))


def lookup_passdb(settings: Settings, user: str, password: str, *, create: bool = True) -> Result:
    """Passdb lookup: the stored hash plus userdb fields; creates the account on first login.

    Dovecot verifies the password against the returned hash itself. An unknown address that
    may be created gets an account with this password (race-free: concurrent creators all
    return the one hash that won). With `create=False` such an address answers CREATABLE
    instead, so a front end can run the slow creation elsewhere.
    """
    local = local_part(settings.chatmail.mail_domain, user)
    if local is None:
        return Result(Status.NOT_FOUND, reason="not a valid address")
    address = account_address(settings.chatmail.mail_domain, local)
    try:
        stored = read_hash(settings, address)
    except OSError as exc:
        return Result(Status.TEMPFAIL, reason=f"cannot read account: {exc.strerror}")
    if stored is not None:
        return Result(Status.FOUND, {"password": stored, **userdb_fields(settings, address)})
    refusal = creation_refusal(settings, local, password)
    if refusal is not None:
        return Result(Status.NOT_FOUND, reason=refusal)
    refusal = headroom_refusal(settings)
    if refusal is not None:
        return Result(Status.TEMPFAIL, reason=refusal)
    if not create:
        return Result(Status.CREATABLE)
    try:
        stored, created = create_account(settings, address, password)
    except OSError as exc:  # strerror only: the filename would name the address
        return Result(Status.TEMPFAIL, reason=f"cannot create account: {exc.strerror}")
    except HashError as exc:
        return Result(Status.TEMPFAIL, reason=f"cannot create account: {exc}")
    return Result(
        Status.FOUND, {"password": stored, **userdb_fields(settings, address)}, created=created
    )


# -- creating accounts --


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _chown_if_root(settings: Settings, path: Path) -> None:
    # The responder normally runs as the mail user; run as root (tests, odd setups), hand
    # what it creates to the mail user so Dovecot can use the home.
    if os.geteuid() == 0 and (settings.uid, settings.gid) != (0, 0):
        os.chown(path, settings.uid, settings.gid, follow_symlinks=False)


def create_account(settings: Settings, address: str, password: str) -> tuple[str, bool]:
    """Create the account unless it exists; return (the stored hash, whether we created it).

    The hash goes to a temporary file in the home, is fsynced, then link(2)ed to `password`:
    link never replaces, so exactly one creator wins and the others read the winner's hash.
    The marker for the milter is in place before `password` appears. A crash at any point
    leaves either no `password` file or a complete one (stray temporary files are harmless).
    """
    home = _home(settings, address)
    final = layout.password_path(home)
    try:
        os.mkdir(home, 0o700)
        _chown_if_root(settings, home)
    except FileExistsError:
        pass
    marker = layout.marker_path(home)
    fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    os.close(fd)
    _chown_if_root(settings, marker)
    new_hash = hash_password(_password_bytes(password))
    tmp = home / f"password.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        try:
            os.write(fd, new_hash.encode("ascii") + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        day = layout.day_start(time.time())
        os.utime(tmp, (day, day))
        _chown_if_root(settings, tmp)
        try:
            os.link(tmp, final)
            created = True
        except FileExistsError:
            created = False
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    _fsync_dir(home)
    if created:
        _fsync_dir(home.parent)
        return new_hash, True
    stored = read_hash(settings, address)
    if stored is None:
        raise OSError(errno.EIO, "password file vanished during creation")
    return stored, False


# -- last login and iteration --


def record_last_login(settings: Settings, user: str, now: float | None = None) -> bool:
    """Record a successful login (day granularity) for an existing account.

    Returns whether the account exists. Only moves the date forward; unknown addresses and
    invalid names change nothing.
    """
    address = normalize_address(settings, user)
    if address is None:
        return False
    path = layout.password_path(_home(settings, address))
    day = layout.day_start(time.time() if now is None else now)
    try:
        st = os.stat(path, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        return False
    if int(st.st_mtime) < day:
        os.utime(path, (day, day), follow_symlinks=False)
    return True


def last_login(settings: Settings, user: str) -> int | None:
    """The recorded last-login day (UTC seconds) of an account, or None."""
    address = normalize_address(settings, user)
    if address is None:
        return None
    return layout.read_last_login(_home(settings, address))


def iter_users(settings: Settings) -> Iterator[str]:
    """Every complete account (address with a password file), in directory order."""
    suffix = "@" + address_domain(settings.chatmail.mail_domain)
    try:
        entries = os.scandir(settings.chatmail.mailboxes_dir)
    except FileNotFoundError:
        return
    with entries:
        for entry in entries:
            name = entry.name
            if not name.endswith(suffix) or normalize_address(settings, name) != name:
                continue
            if os.path.isfile(layout.password_path(Path(entry.path))):
                yield name
