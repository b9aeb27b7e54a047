"""Which Dovecot is installed, and which set of templates fits it.

Debian 12 ships Dovecot 2.3, Debian 13 ships 2.4, whose configuration syntax differs throughout
(chatmail_services/templates/dovecot/ and templates/dovecot24/). The setup command asks
`dovecot --version` and renders the set that version takes; any other version is refused
rather than given a configuration nobody tested.
"""

from __future__ import annotations

import re
import subprocess

# (major, minor) -> the template directory under chatmail_services/templates/
TEMPLATE_DIRS = {(2, 3): "dovecot", (2, 4): "dovecot24"}
# "2.3.19.1 (9b53102964)", "2.4.1-4 (7d8c0e5759)", "2.4.1"
VERSION = re.compile(r"(\d{1,4})\.(\d{1,4})(?:[.\-+~][0-9A-Za-z.+~-]*)?(?:\s+\([0-9a-f]+\))?")


def parse_dovecot_version(text: str) -> tuple[int, int]:
    """(major, minor) of `dovecot --version` output; ValueError for anything else."""
    match = VERSION.fullmatch(text.strip())
    if not match:
        raise ValueError(f"not a Dovecot version: {text.strip()[:80]!r}")
    return int(match[1]), int(match[2])


def dovecot_template_dir(version: tuple[int, int]) -> str:
    """The template directory for Dovecot `version` (major, minor)."""
    try:
        return TEMPLATE_DIRS[version]
    except KeyError:
        supported = ", ".join(f"{a}.{b}" for a, b in sorted(TEMPLATE_DIRS))
        raise ValueError(
            f"Dovecot {version[0]}.{version[1]} is not supported (templates for {supported})"
        ) from None


def version_text(binary: str = "dovecot") -> str:
    """What `dovecot --version` prints; OSError when there is no such program, RuntimeError
    when it fails."""
    result = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"{binary} --version failed: {result.stderr.strip()[:200]}")
    return result.stdout.strip()


def dovecot_version(binary: str = "dovecot") -> tuple[int, int]:
    """The installed Dovecot's (major, minor), from `dovecot --version`."""
    return parse_dovecot_version(version_text(binary))
