"""The Debian package, built once per test session for every package test that needs it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from package.debtools import build, copy_repo


@dataclass(frozen=True)
class BuiltDeb:
    deb: Path
    lint: list[Path]  # the .dsc and the .changes, for lintian


@pytest.fixture(scope="session")
def built_deb(tmp_path_factory: pytest.TempPathFactory) -> BuiltDeb:
    work = tmp_path_factory.mktemp("deb")
    deb, lint, _log = build(copy_repo(work / "chatmail-services"))
    return BuiltDeb(deb, lint)
