"""The configuration file: defaults, overrides, errors with exit status 78, unknown keys."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import pytest
from harness import REPO
from hypothesis import given
from hypothesis import strategies as st

from chatmail_services.config import (
    EX_CONFIG,
    ConfigError,
    load_config,
    option_docs,
    parse_config,
    parse_size,
)


def test_defaults_match_the_spec():
    config = parse_config("[chatmail]\nmail_domain = chat.example\n")
    assert config.chatmail.max_mailbox_size == 500 * 1024 * 1024
    assert config.auth.username_min_length == config.auth.username_max_length == 9
    assert config.auth.password_min_length == 9
    assert config.milter.max_user_send_per_minute == 60
    assert config.milter.max_user_send_burst_size == 10
    assert config.expire.delete_mails_after == 20
    assert config.expire.delete_large_after == 7
    assert config.expire.delete_inactive_users_after == 90
    assert config.warnings == ()


def test_every_option_is_documented():
    text = (REPO / "docs" / "configuration.md").read_text()
    for section, key, _default, _doc in option_docs():
        assert f"`{key}`" in text, f"[{section}] {key} missing from docs/configuration.md"


@pytest.mark.parametrize(
    ("ini", "needle"),
    [
        ("[chatmail]\nmax_mailbox_size = lots\n", "[chatmail] max_mailbox_size: not a size"),
        (
            "[chatmail]\nmailboxes_dir = relative/dir\n",
            "[chatmail] mailboxes_dir: must be an absolute path",
        ),
        ("[chatmail]\nmail_domain = not a domain\n", "[chatmail] mail_domain: not a valid domain"),
        ("[chatmail]\nmail_domain = 999.0.2.1\n", "[chatmail] mail_domain: not a valid domain"),
        ("[chatmail]\nmail_domain = [192.0.2.1]\n", "[chatmail] mail_domain: not a valid domain"),
        ("[chatmail]\nmail_domain = 2001:db8::1\n", "[chatmail] mail_domain: an IPv6 address"),
        ("[chatmail]\nmail_domain = chat.example.\n", "[chatmail] mail_domain: not a valid domain"),
        ("[auth]\nusername_min_length = 0\n", "[auth] username_min_length: must be at least 1"),
        ("[auth]\nusername_min_length = 12\n", "[auth] username_min_length: larger than"),
        (
            "[milter]\nmax_user_send_per_minute = x\n",
            "[milter] max_user_send_per_minute: not a whole number",
        ),
        ("[expire]\nquota_trim_target = 90\n", "[expire] quota_trim_target: larger than"),
        ("no section header\n", "not a valid INI file"),
    ],
)
def test_bad_values_name_file_key_and_problem(ini, needle):
    with pytest.raises(ConfigError) as info:
        parse_config(ini, "/etc/chatmail/chatmail.ini")
    message = str(info.value)
    assert message.startswith("/etc/chatmail/chatmail.ini: ")
    assert needle in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("value", "expected"),
    [("192.0.2.1", "192.0.2.1"), (" 127.0.0.1 ", "127.0.0.1"), ("Chat.Example", "chat.example")],
)
def test_mail_domain_is_a_name_or_an_ipv4_address(value, expected):
    config = parse_config(f"[chatmail]\nmail_domain = {value}\n")
    assert config.chatmail.mail_domain == expected


def test_unknown_keys_and_sections_are_warnings():
    config = parse_config("[auth]\npasword_min_length = 3\n[extra]\nx = 1\n", "f.ini")
    assert "f.ini: [auth] pasword_min_length: unknown key ignored" in config.warnings
    assert "f.ini: unknown section [extra] ignored" in config.warnings


def test_flag_beats_environment_beats_default(tmp_path, monkeypatch):
    flag = tmp_path / "flag.ini"
    env = tmp_path / "env.ini"
    flag.write_text("[chatmail]\nmail_domain = flag.example\n")
    env.write_text("[chatmail]\nmail_domain = env.example\n")
    monkeypatch.setenv("CHATMAIL_CONFIG", str(env))
    assert load_config(str(flag)).chatmail.mail_domain == "flag.example"
    assert load_config(None).chatmail.mail_domain == "env.example"
    monkeypatch.setenv("CHATMAIL_CONFIG", str(tmp_path / "missing.ini"))
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(None)


def test_bad_config_exits_78_with_one_line(tmp_path):
    bad = tmp_path / "bad.ini"
    bad.write_text("[chatmail]\nmax_message_size = -5\n")
    for command in ("chatmail-auth", "chatmail-milter", "chatmail-expire"):
        exe = Path(sys.executable).parent / command
        args = [str(exe), "--config", str(bad)]
        if command != "chatmail-expire":
            args.append("serve")
        result = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, timeout=30)
        assert result.returncode == EX_CONFIG, (command, result.stderr)
        assert result.stderr.strip().count("\n") == 0, result.stderr
        assert f"{bad}: [chatmail] max_message_size" in result.stderr


@given(
    st.integers(min_value=0, max_value=2**40),
    st.sampled_from(["", "k", "K", "m", "M", "g", "G", "t"]),
)
def test_parse_size_round_trip(number, unit):
    factor = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}[unit.lower()]
    assert parse_size(f"{number}{unit}") == number * factor


@given(st.text(max_size=40))
def test_parse_size_never_crashes(text):
    with contextlib.suppress(ValueError):
        assert parse_size(text) >= 0


@given(st.text(max_size=300))
def test_arbitrary_ini_text_loads_or_fails_with_one_line(text):
    try:
        config = parse_config(text, "x.ini")
    except ConfigError as exc:
        assert str(exc).startswith("x.ini: ")
        assert "\n" not in str(exc)
    else:
        assert config.chatmail.max_mailbox_size > 0


@given(
    st.dictionaries(
        st.sampled_from([key for section, key, _d, _doc in option_docs() if section == "auth"]),
        st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=12),
        max_size=4,
    )
)
def test_arbitrary_values_load_or_fail_naming_the_key(values):
    ini = "[auth]\n" + "".join(f"{k} = {v}\n" for k, v in values.items())
    try:
        parse_config(ini, "x.ini")
    except ConfigError as exc:
        assert "[auth] " in str(exc) or "not a valid INI" in str(exc)
