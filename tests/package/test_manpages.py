"""The manual pages: render without groff warnings and cover every option the commands take."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from harness import REPO, VENV_BIN

from chatmail_services.config import option_docs

MAN = REPO / "docs" / "man"
PAGES = [
    "chatmail-auth.8",
    "chatmail-milter.8",
    "chatmail-expire.8",
    "chatmail-metadata.8",
    "chatmail-web.8",
    "chatmail-mxdeliv.8",
    "chatmail-mxsend.8",
    "chatmail-dns.8",
    "chatmail-setup.8",
    "chatmail-status.8",
    "chatmail-metrics-collect.8",
    "chatmail.ini.5",
]
COMMANDS = [
    "chatmail-auth",
    "chatmail-milter",
    "chatmail-expire",
    "chatmail-metadata",
    "chatmail-web",
    "chatmail-mxdeliv",
    "chatmail-mxsend",
    "chatmail-dns",
    "chatmail-setup",
    "chatmail-status",
    "chatmail-metrics-collect",
]
# Commands that take options only, no subcommands.
WITHOUT_SUBCOMMANDS = {
    "chatmail-expire",
    "chatmail-dns",
    "chatmail-setup",
    "chatmail-status",
    "chatmail-metrics-collect",
}


def _render(page: Path) -> subprocess.CompletedProcess[str]:
    # the same call lintian makes (groff warnings on stderr)
    env = {**os.environ, "MANWIDTH": "80", "LC_ALL": "C.UTF-8", "MAN_DISABLE_SECCOMP": "1"}
    return subprocess.run(
        ["man", "--warnings", "-E", "UTF-8", "-l", "-Tutf8", str(page)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def _plain(page: Path) -> str:
    env = {**os.environ, "MANWIDTH": "200", "LC_ALL": "C.UTF-8", "MAN_DISABLE_SECCOMP": "1"}
    out = subprocess.run(
        ["man", "-l", str(page)], capture_output=True, text=True, env=env, check=True
    ).stdout
    return re.sub(r".\x08", "", out)


@pytest.mark.parametrize("name", PAGES)
def test_page_renders_without_warnings(name):
    result = _render(MAN / name)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    plain = re.sub(r".\x08", "", result.stdout)
    assert "NAME" in plain and "SEE ALSO" in plain


def test_a_broken_page_does_warn(tmp_path):
    """The warning check above can fail: groff reports an undefined macro."""
    bad = tmp_path / "bad.8"
    bad.write_text(".TH BAD 8\n.SH NAME\nbad \\- bad\n.XYZ oops\n.SH SEE ALSO\nnothing\n")
    assert "XYZ" in _render(bad).stderr


def test_debian_installs_every_page():
    listed = (REPO / "debian" / "chatmail-services.manpages").read_text().split()
    assert sorted(listed) == sorted(f"docs/man/{name}" for name in PAGES)


def test_config_page_documents_every_option_with_its_default():
    text = _plain(MAN / "chatmail.ini.5")
    for section, key, default, _doc in option_docs():
        assert f"[{section}]" in text
        pattern = rf"^ +{re.escape(key)}\b.*?Default: {re.escape(default.strip('()') or 'empty')}"
        assert re.search(pattern, text, re.M | re.S), f"[{section}] {key} missing"


def _help(command: str, *args: str) -> str:
    result = subprocess.run(
        [str(VENV_BIN / command), *args, "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _subcommands(help_text: str) -> list[str]:
    """The subcommands argparse lists under "positional arguments" (4-space indented)."""
    section = help_text.split("positional arguments:", 1)[-1].split("\n\n", 1)[0]
    if "positional arguments:" not in help_text:
        return []
    return re.findall(r"^ {4}([a-z][\w-]*)", section, re.M)


@pytest.mark.parametrize("command", COMMANDS)
def test_page_covers_every_subcommand_and_option_of_the_command(command):
    """Whatever the command's argparse accepts (asked with --help) is in its page."""
    page = _plain(MAN / f"{command}.8")
    top = _help(command)
    helps = [top] + [_help(command, sub) for sub in _subcommands(top)]
    if command not in WITHOUT_SUBCOMMANDS:
        assert _subcommands(top), f"{command} --help lists no subcommands"
    for sub in _subcommands(top):
        assert re.search(rf"^ {{7}}{re.escape(sub)}\b", page, re.M), f"{command} {sub}"
    for text in helps:
        for option in set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", text)) - {"--help"}:
            assert option in page, f"{command}: {option} not in its man page"
