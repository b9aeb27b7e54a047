"""The packaged conffile /etc/chatmail/chatmail.ini matches the configuration schema."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from harness import REPO

from chatmail_services.config import SECTIONS, option_docs, parse_config

SHIPPED = REPO / "debian" / "chatmail.ini"
MAN = REPO / "docs" / "man" / "chatmail.ini.5"
GENERATOR = REPO / "scripts" / "gen-chatmail-ini.py"
OPTION_LINE = re.compile(r"^#(\w+) = ?(.*)$")


def _run_generator(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # cwd outside the repository: the repo root must never be on sys.path
    return subprocess.run(
        [sys.executable, str(GENERATOR), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )


def test_shipped_conffile_is_what_the_generator_writes(tmp_path):
    out, man = tmp_path / "chatmail.ini", tmp_path / "chatmail.ini.5"
    man.write_text(MAN.read_text())
    assert _run_generator(tmp_path, "--ini", str(out), "--man", str(man)).returncode == 0
    assert out.read_text() == SHIPPED.read_text(), "run scripts/gen-chatmail-ini.py"
    assert man.read_text() == MAN.read_text(), "run scripts/gen-chatmail-ini.py"
    assert _run_generator(tmp_path, "--check").returncode == 0


def test_check_mode_notices_a_stale_file(tmp_path):
    stale = tmp_path / "chatmail.ini"
    stale.write_text(SHIPPED.read_text().replace("#timeout = 600", "#timeout = 601"))
    result = _run_generator(tmp_path, "--check", "--ini", str(stale))
    assert result.returncode == 1
    assert "chatmail.ini is out of date" in result.stderr
    stale_man = tmp_path / "chatmail.ini.5"
    assert "Default:\\ \\fB600" in MAN.read_text()  # the replacement below changes something
    stale_man.write_text(MAN.read_text().replace("Default:\\ \\fB600", "Default:\\ \\fB601"))
    result = _run_generator(tmp_path, "--check", "--man", str(stale_man))
    assert result.returncode == 1
    assert "chatmail.ini.5 is out of date" in result.stderr


def _commented_options(text: str) -> dict[tuple[str, str], str]:
    """{(section, key): default} for every commented-out option line, by section."""
    found: dict[tuple[str, str], str] = {}
    section = None
    for line in text.splitlines():
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif match := OPTION_LINE.match(line):
            assert section is not None, f"option outside a section: {line!r}"
            found[(section, match[1])] = match[2]
    return found


def test_every_option_is_listed_commented_at_its_default():
    text = SHIPPED.read_text()
    found = _commented_options(text)
    expected = {(section, key): default for section, key, default, _doc in option_docs()}
    assert found == expected
    # every section header is present (uncommented), in schema order
    headers = [line[1:-1] for line in text.splitlines() if line.startswith("[")]
    assert headers == list(SECTIONS)


def test_shipped_file_parses_to_the_defaults_without_warnings():
    shipped = parse_config(SHIPPED.read_text(), "chatmail.ini")
    defaults = parse_config("", "chatmail.ini")
    assert shipped == defaults
    assert shipped.warnings == ()


def test_uncommenting_every_literal_default_changes_nothing():
    literal = {(s, k) for s, k, d, _ in option_docs() if not d.startswith("(")}
    lines, section = [], None
    for line in SHIPPED.read_text().splitlines():
        if line.startswith("["):
            section = line[1:-1]
        match = OPTION_LINE.match(line)
        if match and (section, match[1]) in literal:
            line = line[1:]
        lines.append(line)
    uncommented = parse_config("\n".join(lines), "chatmail.ini")
    assert uncommented == parse_config("", "chatmail.ini")
    assert uncommented.warnings == ()
