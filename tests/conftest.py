"""Fixtures every test area shares: hypothesis profiles and a temporary relay configuration."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from chatmail_services.config import Config

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

# Markers agree with folders: every test in one of these folders carries one of its markers
# (a `stack` test in a service folder, e.g. tests/milter, is fine as long as it is marked).
FOLDER_MARKERS = {
    "stack": {"stack"},
    "e2e": {"e2e"},
    "federation": {"stack", "e2e"},
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse to run when a test in a marked folder lacks that folder's marker."""
    here = Path(__file__).resolve().parent
    unmarked = []
    for item in items:
        folder = Path(item.path).resolve().relative_to(here).parts[0]
        wanted = FOLDER_MARKERS.get(folder)
        if wanted and not wanted & {mark.name for mark in item.iter_markers()}:
            unmarked.append(f"{item.nodeid} (wants {' or '.join(sorted(wanted))})")
    if unmarked:
        raise pytest.UsageError("tests without their folder's marker:\n" + "\n".join(unmarked))


@pytest.fixture
def make_config(tmp_path: Path) -> MakeConfig:
    """Build a temporary relay config with its Maildir root; keyword args override sections.

    `make_config(auth={"password_min_length": 12})` returns the loaded `Config`.
    """

    # Imported here: harness.fixtures is a pytest plugin (see pytest_plugins) and must be
    # registered before it is imported, for pytest's assertion rewriting.
    from harness.fixtures import write_test_config

    def make(**sections: dict[str, object]) -> Config:
        return write_test_config(tmp_path, tmp_path / "milter.sock", **sections)

    return make


@pytest.fixture
def config(make_config: MakeConfig) -> Config:
    """The default temporary config (domain chat.example)."""
    return make_config()
