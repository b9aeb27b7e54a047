"""Helpers for the packaging tests: copy our units to a temporary unit directory and verify."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from harness import REPO, VENV_BIN

UNITS = REPO / "systemd-units"
_OUR_BINARY = re.compile(r"/usr/bin/(chatmail-[a-z-]+)\b")  # every one is a venv console script


def companions(unit: str) -> list[str]:
    """The unit and the units it comes with (socket + service, timer + service)."""
    stem = unit.rsplit(".", 1)[0]
    return sorted(p.name for p in UNITS.glob(f"{stem}.*") if p.suffix != ".d")


def to_venv(text: str) -> str:
    """Point ExecStart at the virtualenv's console scripts (the package is not installed)."""
    return _OUR_BINARY.sub(lambda m: str(VENV_BIN / m[1]), text)


def stage_units(dest: Path) -> Path:
    """Copy systemd-units/* to dest with ExecStart pointing at the venv; return dest."""
    dest.mkdir(parents=True, exist_ok=True)
    for unit in UNITS.iterdir():
        if unit.is_file():
            (dest / unit.name).write_text(to_venv(unit.read_text()))
    return dest


def stage_manpages(dest: Path) -> Path:
    """docs/man/* as a man tree in dest (the units' Documentation=man: links are checked)."""
    for page in (REPO / "docs" / "man").glob("*.[1-8]"):
        section = dest / f"man{page.suffix[1:]}"
        section.mkdir(parents=True, exist_ok=True)
        shutil.copy(page, section / page.name)
    return dest


def verify(unit_dir: Path, units: list[str]) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze verify` on units in unit_dir (drop-ins in <unit>.d/ beside them).

    Our man pages are not installed here: MANPATH points at a copy of docs/man.
    """
    man = stage_manpages(unit_dir.parent / "man")
    return subprocess.run(
        ["systemd-analyze", "verify", *(str(unit_dir / u) for u in units)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "MANPATH": f"{man}:"},
    )


def copy_tree(src: Path, dest: Path) -> None:
    shutil.copytree(src, dest, dirs_exist_ok=True)
