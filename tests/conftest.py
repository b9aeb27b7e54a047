"""Fixtures every test area shares: hypothesis profiles and a temporary relay configuration."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from chatmail_services.config import Config, load_config

pytest_plugins = ["harness.fixtures"]

# "ci": quick, for every run of the test command; "soak": long, for runs by hand
# (HYPOTHESIS_PROFILE=soak scripts/test.sh -k hypothesis_or_whatever).
settings.register_profile("ci", max_examples=100, deadline=None, print_blob=True)
settings.register_profile(
    "soak",
    max_examples=20000,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=30, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

MakeConfig = Callable[..., Config]


def write_config(path: Path, sections: dict[str, dict[str, object]]) -> Path:
    """Write an INI file from {section: {key: value}}."""
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {value}" for key, value in values.items())
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@pytest.fixture
def make_config(tmp_path: Path) -> MakeConfig:
    """Build a temporary relay config with its Maildir root; keyword args override sections.

    `make_config(auth={"password_min_length": 12})` returns the loaded `Config`.
    """

    def make(**sections: dict[str, object]) -> Config:
        mailboxes = tmp_path / "mailboxes"
        mailboxes.mkdir(exist_ok=True)
        merged: dict[str, dict[str, object]] = {
            "chatmail": {"mail_domain": "chat.example", "mailboxes_dir": mailboxes},
            "auth": {
                "socket": tmp_path / "auth.sock",
                "nocreate_file": tmp_path / "nocreate",
                # headroom checks must not refuse creation on a busy test machine
                "max_load_1m": 1000,
                "min_available_memory": 0,
                "min_free_disk": 0,
            },
            "milter": {"socket": tmp_path / "milter.sock"},
        }
        for section, values in sections.items():
            merged.setdefault(section, {}).update(values)
        return load_config(str(write_config(tmp_path / "chatmail.ini", merged)))

    return make


@pytest.fixture
def config(make_config: MakeConfig) -> Config:
    """The default temporary config (domain chat.example)."""
    return make_config()
