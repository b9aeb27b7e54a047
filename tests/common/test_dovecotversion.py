"""Choosing the Dovecot template set by `dovecot --version` (pure parser, and this host's)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatmail_services.dovecotversion import (
    TEMPLATE_DIRS,
    dovecot_template_dir,
    dovecot_version,
    parse_dovecot_version,
)
from chatmail_services.mailconfig import DOVECOT_SETS
from chatmail_services.templating import TEMPLATES

NUMBER = st.integers(min_value=0, max_value=9999)
SUFFIX = st.sampled_from(["", ".1", ".19.1", "-4", "-4+deb13u1", "~rc1", ".0.1-1"])
BUILD = st.sampled_from(["", " (9b53102964)", " (7d8c0e5759)"])


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("2.3.19.1 (9b53102964)\n", (2, 3)),  # Debian 12
        ("2.4.1-4 (7d8c0e5759)\n", (2, 4)),  # Debian 13
        ("2.4.1", (2, 4)),
    ],
)
def test_debian_versions(text, version):
    assert parse_dovecot_version(text) == version


@given(NUMBER, NUMBER, SUFFIX, BUILD)
def test_parses_major_and_minor_whatever_follows(major, minor, suffix, build):
    assert parse_dovecot_version(f"{major}.{minor}{suffix}{build}\n") == (major, minor)


@given(st.text(max_size=60))
def test_junk_is_a_clear_error_or_a_version(text):
    try:
        major, minor = parse_dovecot_version(text)
    except ValueError as error:
        assert "not a Dovecot version" in str(error)
    else:
        assert text.strip().startswith(f"{major}.{minor}")


@pytest.mark.parametrize("text", ["", "dovecot", "2", "2.", "v2.4.1", "2.4.1 extra words", "2,4"])
def test_not_versions(text):
    with pytest.raises(ValueError, match="not a Dovecot version"):
        parse_dovecot_version(text)


def test_template_dirs_exist_and_hold_a_dovecot_conf():
    for directory in TEMPLATE_DIRS.values():
        assert (TEMPLATES / directory / "dovecot.conf").is_file(), directory
    assert dovecot_template_dir((2, 3)) == "dovecot"
    assert dovecot_template_dir((2, 4)) == "dovecot24"


@given(NUMBER, NUMBER)
def test_other_versions_are_refused_by_name(major, minor):
    if (major, minor) in TEMPLATE_DIRS:
        return
    with pytest.raises(ValueError, match=rf"Dovecot {major}\.{minor} is not supported"):
        dovecot_template_dir((major, minor))


def test_this_hosts_dovecot():
    assert shutil.which("dovecot"), "Dovecot is a test dependency (scripts/install-deps.sh)"
    release = Path("/etc/debian_version").read_text()
    expected = "dovecot24" if release.startswith("13.") else "dovecot"
    assert dovecot_template_dir(dovecot_version()) == expected


def test_a_missing_binary_is_an_error(tmp_path):
    with pytest.raises(OSError):
        dovecot_version(str(tmp_path / "no-dovecot"))


def test_every_set_names_templates_that_exist_and_one_dovecot_conf():
    assert set(DOVECOT_SETS) == set(TEMPLATE_DIRS.values())
    for directory, (rendered, copied) in DOVECOT_SETS.items():
        for template in (*rendered, *copied):
            assert (TEMPLATES / template).is_file(), template
        names = [Path(template).name for template in (*rendered, *copied)]
        assert len(names) == len(set(names)), names  # each lands in /etc/dovecot by its name
        assert f"{directory}/dovecot.conf" in rendered
