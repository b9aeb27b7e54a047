"""The web face on its own loopback address: chatmail-web behind a private nginx."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import stack_dir
from harness.fixtures import write_test_config
from harness.net import free_port
from harness.tls import self_signed_cert
from harness.web import WebFront

# this area's fixed loopback address; nginx on free ports of it (not 80 and 443, which a
# system nginx listening on every address would hold)
WEB_ADDRESS = "127.0.0.22"
DOMAIN = "chat.example"
RETENTION_DAYS = 17  # not the default 20: the pages must say what the config says


@pytest.fixture(scope="module")
def front() -> Iterator[WebFront]:
    root = stack_dir("chatmail-web-")
    config = write_test_config(
        root,
        root / "milter.sock",
        expire={"delete_mails_after": RETENTION_DAYS},
        tls={"self_signed": "yes"},
        web={"login_host": WEB_ADDRESS, "operator_contact": "ops@x.test"},
    )
    with WebFront(
        root,
        config,
        address=WEB_ADDRESS,
        tls=self_signed_cert(root, DOMAIN),
        http_port=free_port(WEB_ADDRESS),
        https_port=free_port(WEB_ADDRESS),
    ) as web:
        yield web
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def artefacts() -> Path:
    """Where screenshots are kept after the run: $CHATMAIL_TEST_ARTEFACTS, else a fresh
    directory under the system's temporary directory (printed)."""
    named = os.environ.get("CHATMAIL_TEST_ARTEFACTS")
    path = Path(named) if named else Path(tempfile.mkdtemp(prefix="chatmail-web-artefacts-"))
    path.mkdir(parents=True, exist_ok=True)
    _ARTEFACTS.append(path)
    return path


_ARTEFACTS: list[Path] = []


def pytest_terminal_summary(terminalreporter) -> None:
    """Say where the screenshots are, at the end of every run that made some."""
    for path in _ARTEFACTS:
        terminalreporter.write_line(f"web test artefacts (screenshots): {path}")
