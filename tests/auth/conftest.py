"""Fixtures of the auth tests: resolved settings and the daemon under socket activation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from chatmail_services.authsocket.accounts import Settings, settings_from_config
from harness.activation import ActivatedService
from harness.authtools import start_auth

from chatmail_services.config import Config


@pytest.fixture
def settings(config: Config) -> Settings:
    return settings_from_config(config)


@pytest.fixture
def daemon(config: Config, tmp_path: Path) -> Iterator[ActivatedService]:
    """chatmail-auth serve, socket-activated (harness.activation); must stop cleanly, and its
    log (level info) must name no address."""
    server = start_auth(config, tmp_path)
    yield server
    status = server.close()  # the exit status, also when the test stopped it already
    log = server.log_text()
    assert "Traceback" not in log, log
    assert status == 0, log
    assert "@chat.example" not in log, log  # addresses only at log_level = debug
