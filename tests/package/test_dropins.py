"""Every drop-in documented in docs/admin.md is a file that systemd accepts with its unit."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from package.unitfiles import REPO, UNITS, companions, stage_units, to_venv, verify

DROPINS = REPO / "docs" / "dropins"
ADMIN = REPO / "docs" / "admin.md"
FILES = sorted(p.relative_to(DROPINS).as_posix() for p in DROPINS.glob("*.d/*.conf"))


def _unit_of(rel: str) -> str:
    return rel.split("/", 1)[0].removesuffix(".d")


def test_there_are_dropins_for_every_documented_task():
    units = {_unit_of(rel) for rel in FILES}
    assert {"chatmail-auth.socket", "chatmail-auth.service"} <= units
    assert len(FILES) >= 5


@pytest.mark.parametrize("rel", FILES)
def test_dropin_is_in_admin_md_verbatim(rel):
    text = ADMIN.read_text()
    assert f"/etc/systemd/system/{rel}" in text, f"admin.md does not name {rel}"
    blocks = re.findall(r"```ini\n(.*?)```", text, re.S)
    assert (DROPINS / rel).read_text() in blocks, f"admin.md does not show {rel} verbatim"


def test_every_dropin_shown_in_admin_md_is_a_file():
    text = ADMIN.read_text()
    shown = re.findall(r"`/etc/systemd/system/([\w.-]+\.d/[\w.-]+\.conf)`:\n\n```ini\n", text)
    assert shown, "admin.md shows no drop-in"
    for rel in shown:
        assert (DROPINS / rel).is_file(), f"admin.md shows {rel}, docs/dropins/ lacks it"


@pytest.mark.parametrize("rel", FILES)
def test_dropin_verifies_with_its_unit(rel, tmp_path):
    unit = _unit_of(rel)
    assert (UNITS / unit).is_file(), f"{rel}: no unit systemd-units/{unit}"
    unit_dir = stage_units(tmp_path / "units")
    dropin = unit_dir / f"{unit}.d" / Path(rel).name
    dropin.parent.mkdir()
    dropin.write_text(to_venv((DROPINS / rel).read_text()))
    result = verify(unit_dir, companions(unit))
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr


@pytest.mark.parametrize(
    ("unit", "section", "bad_line", "complaint"),
    [
        ("chatmail-auth.socket", "Socket", "SocketMode=banana", "banana"),
        ("chatmail-auth.service", "Service", "LimitNOFILE=lots", "lots"),
        ("chatmail-auth.service", "Service", "NoSuchSetting=1", "NoSuchSetting"),
        # a second ExecStart= without clearing the list first: the unit is refused
        ("chatmail-auth.service", "Service", "ExecStart=/bin/true", "more than one ExecStart"),
    ],
)
def test_a_broken_dropin_is_caught(tmp_path, unit, section, bad_line, complaint):
    """The check above sees the drop-ins: a bad line in one is reported."""
    unit_dir = stage_units(tmp_path / "units")
    (unit_dir / f"{unit}.d").mkdir()
    (unit_dir / f"{unit}.d" / "bad.conf").write_text(f"[{section}]\n{bad_line}\n")
    result = verify(unit_dir, companions(unit))
    assert complaint in result.stderr
    assert "bad.conf" in result.stderr or result.returncode != 0


def test_the_packaged_units_verify_without_dropins(tmp_path):
    unit_dir = stage_units(tmp_path / "units")
    units = sorted(p.name for p in UNITS.iterdir() if p.is_file())
    result = verify(unit_dir, units)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr
