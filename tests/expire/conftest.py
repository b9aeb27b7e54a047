"""Fixtures for the reaper tests: a synthetic relay tree and its configuration."""

from __future__ import annotations

from pathlib import Path

import pytest
from expire.relaytree import Relay


@pytest.fixture
def relay(tmp_path: Path) -> Relay:
    root = tmp_path / "mailboxes"
    root.mkdir(exist_ok=True)
    return Relay(root)
