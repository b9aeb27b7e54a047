"""pytest fixtures for tests that need real daemons (registered in tests/conftest.py)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatmail_services.config import Config, load_config

from . import mail_ids, stack_dir


@pytest.fixture
def stack_root() -> Iterator[Path]:
    """A directory for daemons' state that the mail user and postfix can traverse."""
    root = stack_dir()
    yield root
    shutil.rmtree(root, ignore_errors=True)


def write_test_config(root: Path, milter_socket: Path, **sections: dict[str, object]) -> Config:
    """Write root/chatmail.ini for tests (domain chat.example, Maildirs in root/mailboxes,
    headroom checks relaxed for a busy machine, no push notifications: nothing leaves this
    machine) and load it; keyword args override sections."""
    mailboxes = root / "mailboxes"
    mailboxes.mkdir(exist_ok=True)
    queue = root / "notify-queue"
    queue.mkdir(exist_ok=True)
    merged: dict[str, dict[str, object]] = {
        "chatmail": {"mail_domain": "chat.example", "mailboxes_dir": mailboxes},
        "auth": {
            "socket": root / "auth.sock",
            "nocreate_file": root / "nocreate",
            "max_load_1m": 1000,
            "min_available_memory": 0,
            "min_free_disk": 0,
        },
        "milter": {"socket": milter_socket},
        "metadata": {"notify_url": "", "queue_dir": queue},
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
