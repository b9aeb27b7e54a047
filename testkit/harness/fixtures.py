"""pytest fixtures for tests that need real daemons (registered in tests/conftest.py)."""

from __future__ import annotations

import functools
import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatmail_services import dkimkey
from chatmail_services.config import Config, load_config

from . import MAIL_USER, mail_ids, stack_dir
from .net import free_port


@pytest.fixture
def stack_root() -> Iterator[Path]:
    """A directory for daemons' state that the mail user and postfix can traverse."""
    root = stack_dir()
    yield root
    shutil.rmtree(root, ignore_errors=True)


@functools.cache
def session_dkim_key() -> bytes:
    """One RSA 2048 DKIM key (PEM) per test session, made by the production code."""
    with tempfile.TemporaryDirectory(prefix="chatmail-test-dkim-") as tmp:
        dkimkey.generate_key(Path(tmp) / "key")
        return (Path(tmp) / "key").read_bytes()


def write_test_dkim_key(path: Path) -> Path:
    """The session's DKIM key at `path`, mode 0600, owned by the mail user when run as root
    (the milter of the stack tests runs as that user)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(session_dkim_key())
    if os.geteuid() == 0:
        entry = pwd.getpwnam(MAIL_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


def write_test_config(root: Path, milter_socket: Path, **sections: dict[str, object]) -> Config:
    """Write root/chatmail.ini for tests (domain chat.example, Maildirs in root/mailboxes,
    headroom checks relaxed for a busy machine, the session's DKIM key in root/dkim.private,
    no push notifications: nothing leaves this machine) and load it; keyword args override
    sections."""
    mailboxes = root / "mailboxes"
    mailboxes.mkdir(exist_ok=True)
    key_file = write_test_dkim_key(root / "dkim.private")
    queue = root / "notify-queue"
    queue.mkdir(exist_ok=True)
    # The services' Prometheus files (never the machine's node exporter directory); the
    # services run as the mail user, so anyone may create files in it (a temporary directory).
    metrics = root / "metrics"
    metrics.mkdir(exist_ok=True)
    metrics.chmod(0o777)
    merged: dict[str, dict[str, object]] = {
        "chatmail": {
            "mail_domain": "chat.example",
            "mailboxes_dir": mailboxes,
            "metrics_dir": metrics,
            "metrics_interval": 1,
        },
        "auth": {
            "socket": root / "auth.sock",
            "nocreate_file": root / "nocreate",
            "max_load_1m": 1000,
            "min_available_memory": 0,
            "min_free_disk": 0,
        },
        "milter": {"socket": milter_socket},
        "dkim": {"key_file": key_file},
        "metadata": {"notify_url": "", "queue_dir": queue},
        # the smtpd for mail received over HTTPS: on 127.0.0.1 as in production, a free port
        "federation": {"smtpd_port": free_port()},
    }
    for section, values in sections.items():
        merged.setdefault(section, {}).update(values)
    lines = []
    for section, values in merged.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {value}" for key, value in values.items())
    path = root / "chatmail.ini"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o644)
    return load_config(str(path))


def stack_config(root: Path, **sections: dict[str, object]) -> Config:
    """The test config for real daemons: mailboxes owned by the mail user, the milter socket
    where the harness's Postfix looks for it."""
    for name in ("mailboxes", "notify-queue"):
        (root / name).mkdir(exist_ok=True)
        os.chown(root / name, *mail_ids())
    milter_socket = root / "postfix" / "queue" / "chatmail" / "milter.sock"
    return write_test_config(root, milter_socket, **sections)
