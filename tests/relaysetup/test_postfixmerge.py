"""Merging our block into main.cf and master.cf: ours win, the admin's lines stay, twice = once."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from chatmail_services.relaysetup.postfixmerge import (
    BEGIN,
    END,
    MergeError,
    main_settings,
    master_entries,
    merge_main,
    merge_master,
)
from hypothesis import given
from hypothesis import strategies as st

OURS_MAIN = """\
# our comment
myhostname = chat.example
smtpd_recipient_restrictions =
  check_recipient_access regexp:/etc/postfix/recipient_access,
  reject_unauth_destination
message_size_limit = 31457280
"""
OURS_MASTER = """\
# service type  private unpriv  chroot  wakeup  maxproc command + args
smtp inet n - y - - smtpd
submission inet n - y - - smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
pickup    unix  n       -       y       60      1       pickup
  -o cleanup_service_name=pickupclean
"""
OUR_NAMES = sorted(main_settings(OURS_MAIN))
OUR_SERVICES = sorted(master_entries(OURS_MASTER))

names = st.sampled_from(
    [*OUR_NAMES, "alias_maps", "mynetworks", "relayhost", "smtpd_client_connection_rate_limit"]
)
words = st.text("abcxyz0123456789/:$,._-", min_size=1, max_size=12)
comments = st.builds(lambda text: f"# {text}", st.text("abc def =#", max_size=20))


@st.composite
def main_cf(draw) -> str:
    """An admin's main.cf: settings (some of ours), continuation lines, comments, blanks."""
    lines = []
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["setting", "comment", "blank"]))
        if kind == "setting":
            lines.append(f"{draw(names)} = {draw(words)}")
            lines.extend(f"  {draw(words)}" for _ in range(draw(st.integers(0, 2))))
        elif kind == "comment":
            lines.append(draw(comments))
        else:
            lines.append("")
    return "\n".join(lines) + ("\n" if lines else "")


services = st.sampled_from(
    [*(s.split()[0] for s in OUR_SERVICES), "uucp", "maildrop", "relay", "smtps"]
)


@st.composite
def master_cf(draw) -> str:
    lines = []
    for _ in range(draw(st.integers(0, 10))):
        if draw(st.booleans()):
            kind = draw(st.sampled_from(["unix", "inet"]))
            lines.append(f"{draw(services)} {kind} - n n - - {draw(words)}")
            lines.extend(
                f"  -o {draw(words)}={draw(words)}" for _ in range(draw(st.integers(0, 2)))
            )
        else:
            lines.append(draw(comments))
    return "\n".join(lines) + ("\n" if lines else "")


@given(main_cf())
def test_main_merge_is_idempotent(current):
    once = merge_main(current, OURS_MAIN)
    assert merge_main(once, OURS_MAIN) == once


@given(main_cf())
def test_main_merge_our_values_win_and_the_admins_others_stay(current):
    merged = main_settings(merge_main(current, OURS_MAIN))
    ours = main_settings(OURS_MAIN)
    admins = {k: v for k, v in main_settings(current).items() if k not in ours}
    assert merged == {**admins, **ours}


@given(main_cf())
def test_main_merge_keeps_every_comment_of_the_admin(current):
    merged = merge_main(current, OURS_MAIN).splitlines()
    for line in current.splitlines():
        if line.startswith("#"):
            assert line in merged


@given(main_cf(), st.text("abc", min_size=1, max_size=5))
def test_an_admin_line_after_our_block_survives_a_rerun(current, value):
    once = merge_main(current, OURS_MAIN)
    edited = once + f"smtpd_client_connection_count_limit = {value}\n"
    assert merge_main(edited, OURS_MAIN) == edited


@given(master_cf())
def test_master_merge_is_idempotent(current):
    once = merge_master(current, OURS_MASTER)
    assert merge_master(once, OURS_MASTER) == once


@given(master_cf())
def test_master_merge_replaces_same_service_and_type_and_keeps_the_rest(current):
    merged = master_entries(merge_master(current, OURS_MASTER))
    ours = master_entries(OURS_MASTER)
    admins = {k: v for k, v in master_entries(current).items() if k not in ours}
    assert merged == {**admins, **ours}
    text = merge_master(current, OURS_MASTER)
    for service in ours:
        headers = [line for line in text.splitlines() if " ".join(line.split()[:2]) == service]
        assert len(headers) == 1, service


def test_continuation_after_a_comment_still_belongs_to_its_line():
    # as Postfix reads it: a comment line does not end a logical line
    text = "mynetworks = 127.0.0.0/8\n# note\n  [::1]/128\nrelayhost =\n"
    assert main_settings(text) == {"mynetworks": "127.0.0.0/8 [::1]/128", "relayhost": ""}
    merged = merge_main(text, "mynetworks = 10.0.0.0/8\n")
    assert "[::1]/128" not in merged and "# note" in merged


def test_a_damaged_block_is_refused_with_one_line():
    with pytest.raises(MergeError, match=r"main\.cf: the chatmail-setup block is damaged"):
        merge_main(f"{BEGIN}\nmyhostname = x\n", OURS_MAIN)
    with pytest.raises(MergeError):
        merge_master(f"{END}\n{BEGIN}\n", OURS_MASTER)


def _postconf(directory: Path, *args: str) -> str:
    return subprocess.run(
        ["postconf", "-c", str(directory), *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_postfix_reads_the_merge_as_our_parser_does(tmp_path):
    """Real postconf on a merged Debian-like main.cf and master.cf: the same settings."""
    current_main = (
        "smtpd_banner = $myhostname ESMTP $mail_name (Debian/GNU)\n"
        "myhostname = old.example\n"
        "mydestination = $myhostname, localhost\n"
        "  localhost.localdomain\n"
        "message_size_limit = 10240000\n"
        "alias_maps = hash:/etc/aliases\n"
    )
    current_master = "smtp inet n - y - - smtpd\nuucp unix - n n - - pipe\n  flags=Fqhu user=uucp\n"
    (tmp_path / "main.cf").write_text(merge_main(current_main, OURS_MAIN))
    (tmp_path / "master.cf").write_text(merge_master(current_master, OURS_MASTER))
    shown = _postconf(tmp_path, "-n")
    assert "myhostname = chat.example\n" in shown
    assert "alias_maps = hash:/etc/aliases\n" in shown
    assert "message_size_limit = 31457280\n" in shown
    assert "old.example" not in (tmp_path / "main.cf").read_text()
    postfix_said = {
        line.split(" = ", 1)[0]: line.split(" = ", 1)[1]
        for line in shown.splitlines()
        if " = " in line and not line.startswith("config_directory")
    }
    assert postfix_said == main_settings((tmp_path / "main.cf").read_text())
    services = {
        " ".join(line.split()[:2]) for line in _postconf(tmp_path, "-M").splitlines() if line
    }
    assert services == {"smtp inet", "submission inet", "pickup unix", "uucp unix"}
