"""The parsers of chatmail-status: `systemctl show`, timestamps, the reaper's summary line,
and the redaction of journal lines (hypothesis)."""

from __future__ import annotations

import ipaddress
import re

import pytest
from chatmail_services.expire.report import summary_line
from chatmail_services.expire.scan import Stats
from chatmail_services.status.redact import MAX_LINE, redact
from chatmail_services.status.rules import parse_reaper_summary
from chatmail_services.status.systemd import parse_show, parse_timestamp
from hypothesis import given
from hypothesis import strategies as st

KEYS = st.text(st.characters(whitelist_categories=("Lu", "Ll", "Nd")), min_size=1, max_size=20)
VALUES = st.text(st.characters(blacklist_characters="\n", blacklist_categories=("Cs",)))
UNITS = st.lists(st.dictionaries(KEYS, VALUES, min_size=1, max_size=8), max_size=5)


def _show_text(units: list[dict[str, str]]) -> str:
    return "\n\n".join("\n".join(f"{k}={v}" for k, v in unit.items()) for unit in units) + "\n"


@given(UNITS)
def test_show_output_parses_back_to_its_units(units):
    assert parse_show(_show_text(units)) == units


@given(st.text(st.characters(blacklist_characters="=\n"), min_size=1))
def test_a_line_without_equals_is_refused(line):
    with pytest.raises(ValueError, match="not a Key=Value line"):
        parse_show(f"Id=x.service\n{line}\n")


def test_show_output_of_systemd():
    text = (
        "Id=chatmail-auth.socket\nLoadState=loaded\nActiveState=active\nResult=success\n\n"
        "Id=nope.service\nLoadState=not-found\nActiveState=inactive\nExecMainStatus=0\n"
        "ExecMainExitTimestamp=\n"
    )
    auth, nope = parse_show(text)
    assert auth["ActiveState"] == "active" and nope["LoadState"] == "not-found"
    assert nope["ExecMainExitTimestamp"] == ""


@given(st.integers(min_value=1, max_value=2**40))
def test_unix_timestamps(seconds):
    assert parse_timestamp(f"@{seconds}") == seconds


@pytest.mark.parametrize("value", ["", "n/a", "@0"])
def test_no_timestamp_is_none(value):
    assert parse_timestamp(value) is None


@given(st.text().filter(lambda t: t not in ("", "n/a") and not t.startswith("@")))
def test_other_timestamps_are_refused(value):
    with pytest.raises(ValueError):
        parse_timestamp(value)


COUNTS = st.integers(min_value=0, max_value=10**12)


@given(COUNTS, COUNTS, COUNTS, COUNTS, COUNTS, COUNTS, st.floats(0, 1e6), st.booleans())
def test_the_reaper_summary_line_parses_back(scanned, accounts, messages, size, left, errors,
                                             seconds, dry):  # fmt: skip
    stats = Stats(
        accounts_scanned=scanned,
        accounts_removed=accounts,
        messages_removed=messages,
        bytes_removed=size,
        dirs_without_password=left,
        errors=errors,
    )
    parsed = parse_reaper_summary(summary_line(stats, seconds, dry))
    assert parsed == {
        "dry_run": dry,
        "accounts_scanned": scanned,
        "accounts_removed": accounts,
        "messages_removed": messages,
        "bytes_removed": size,
        "errors": errors,
    }


@given(st.text())
def test_other_lines_are_no_summary(line):
    if not re.search(r"scanned \d+ accounts", line):
        assert parse_reaper_summary(line) is None


LOCAL = st.from_regex(r"[a-z0-9._+-]{1,12}", fullmatch=True)
DOMAIN = st.from_regex(r"[a-z0-9-]{1,10}(\.[a-z]{2,5}){1,2}", fullmatch=True)
IPV4 = st.ip_addresses(v=4).map(str)
IPV6 = st.ip_addresses(v=6).map(lambda a: a.compressed)
WORDS = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
SECRET = st.one_of(st.builds(lambda local, domain: f"{local}@{domain}", LOCAL, DOMAIN), IPV4, IPV6)


def _addresses_in(text: str) -> list[str]:
    found = []
    for word in re.findall(r"[0-9A-Fa-f:.]{2,}", text):
        for candidate in (word, word.strip(":."), word.strip(".")):
            try:
                ipaddress.ip_address(candidate)
            except ValueError:
                continue
            if candidate.count(":") >= 2 or candidate.count(".") == 3:
                found.append(candidate)
    return found


@given(WORDS, SECRET, WORDS)
def test_redaction_removes_addresses(before, secret, after):
    line = f"{before} {secret} {after}"
    out = redact(line)
    assert "@" not in out
    assert secret not in out
    assert _addresses_in(out) == [], out
    assert len(out) <= MAX_LINE
    assert out.isprintable()


def test_redaction_keeps_a_plain_error_and_times():
    line = "Failed to start at 12:30:05: exit code 1 (status=1/FAILURE)"
    assert redact(line) == line
    assert redact("login failed for a@b.example from 192.0.2.7 and 2001:db8::1") == (
        "login failed for <address> from <ip> and <ip>"
    )
