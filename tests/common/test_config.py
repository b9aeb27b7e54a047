"""The configuration file: defaults, overrides, errors with exit status 78, unknown keys."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import pytest
from harness import REPO
from hypothesis import event, given
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


# -- values rendered into other daemons' files: no control characters, no syntax --


@pytest.mark.parametrize(
    ("ini", "needle"),
    [
        # a configparser continuation line: its own line in main.cf, a block in nginx
        (
            "[tls]\ncert_file = /etc/ssl/a.pem\n  smtpd_relay_restrictions = permit\n",
            "[tls] cert_file: line break (U+000A) at position 15",
        ),
        (
            "[web]\nroot = /var/lib/www\n  location /x { return 200; }\n",
            "[web] root: line break (U+000A)",
        ),
        ("[chatmail]\nmailboxes_dir = /var/mail\tx\n", "[chatmail] mailboxes_dir: tab (U+0009)"),
        ("[web]\noperator_contact = ops#x@chat.example\n", "[web] operator_contact: '#'"),
        ('[web]\noperator_contact = o"ps@chat.example\n', "[web] operator_contact: '\"'"),
        ("[web]\noperator_contact = {ops}@chat.example\n", "[web] operator_contact: '{'"),
        ("[web]\noperator_contact = ops%u@chat.example\n", "[web] operator_contact: '%'"),
        ("[web]\nroot = /var/www deny\n", "[web] root: ' ' is not allowed in a path"),
        ("[web]\nroot = /var/www;deny\n", "[web] root: ';'"),
        ("[web]\nsocket = /run/web:x.sock\n", "[web] socket: ':'"),
        ("[tls]\nkey_file = /etc/$key\n", "[tls] key_file: '$'"),
        ("[chatmail]\nmailboxes_dir = /srv/%u\n", "[chatmail] mailboxes_dir: '%'"),
        ("[chatmail]\nmailboxes_dir = /srv/{x}\n", "[chatmail] mailboxes_dir: '{'"),
        ("[chatmail]\nmailboxes_dir = /srv/m\u00e4il\n", "[chatmail] mailboxes_dir: '\u00e4'"),
        ("[chatmail]\nmail_domain = chat{x}.example\n", "('{' is not allowed)"),
        ("[metadata]\nturn_host = turn\x7f.example\n", "[metadata] turn_host: control"),
        ("[metadata]\nnotify_url = http://push.example/notify\n", "must be an https:// URL"),
        ('[metadata]\nnotify_url = https://push.example/a"b\n', "[metadata] notify_url: '\"'"),
        ("[metadata]\niroh_relay = https://iroh.example/{x}\n", "[metadata] iroh_relay: '{'"),
        ("[dns]\nacme_account_uri = https://ca.example/a;b=c\n", "[dns] acme_account_uri: ';'"),
        ("[auth]\nmail_user = vmail;x\n", "[auth] mail_user: ';'"),
    ],
)
def test_rendered_values_refuse_control_and_syntax_characters(ini, needle):
    with pytest.raises(ConfigError) as info:
        parse_config(ini, "/etc/chatmail/chatmail.ini")
    message = str(info.value)
    assert message.startswith("/etc/chatmail/chatmail.ini: [")
    assert needle in message, message
    assert "\n" not in message and "\t" not in message


@pytest.mark.parametrize(
    ("ini", "section", "key", "expected"),
    [
        ("[tls]\ncert_file = /etc/ssl/a+b@c/x-y_z.pem\n", "tls", "cert_file", None),
        ("[web]\nroot = /srv/www/\n", "web", "root", "/srv/www"),
        ("[web]\noperator_contact = a&b+c@chat.example\n", "web", "operator_contact", None),
        (
            "[metadata]\nnotify_url = https://127.0.0.1:8443/notify\n",
            "metadata",
            "notify_url",
            None,
        ),
        ("[metadata]\nnotify_url =\n", "metadata", "notify_url", ""),
        ("[metadata]\niroh_relay = http://127.0.0.1:3340/\n", "metadata", "iroh_relay", None),
    ],
)
def test_ordinary_values_still_load(ini, section, key, expected):
    value = getattr(getattr(parse_config(ini), section), key)
    text = ini.split("=", 1)[1].strip()
    assert value == (text if expected is None else expected)


_VALUE_CHARS = st.sampled_from(
    [*"abcXYZ019/._-+@:;#\"'{}$%\\<>=, ?&~`|!*()[]^", "\n", "\t", "\r", "\x7f", "é"]
)


@given(
    st.sampled_from(
        [
            ("chatmail", "mailboxes_dir"),
            ("tls", "cert_file"),
            ("tls", "key_file"),
            ("web", "root"),
            ("web", "socket"),
            ("web", "operator_contact"),
            ("chatmail", "mail_domain"),
            ("metadata", "notify_url"),
            ("metadata", "iroh_relay"),
            ("metadata", "turn_host"),
            ("web", "login_host"),
            ("dns", "acme_account_uri"),
        ]
    ),
    st.one_of(
        st.text(st.sampled_from("abz09.-/"), min_size=1, max_size=30),
        st.text(_VALUE_CHARS, min_size=1, max_size=30),
    ),
    st.sampled_from(["", "/", "https://x.example/", "ops@"]),
)
def test_any_value_is_safe_or_one_line_naming_the_option(option, text, prefix):
    section, key = option
    value = (prefix + text).replace("\n", "\n  ")  # a newline becomes a continuation line
    ini = f"[{section}]\n{key} = {value}\n"
    try:
        config = parse_config(ini, "x.ini")
    except ConfigError as exc:
        event("refused")
        assert str(exc).startswith(f"x.ini: [{section}] {key}: ") or "not a valid INI" in str(exc)
        assert "\n" not in str(exc) and "\r" not in str(exc)
        return
    event("accepted")
    loaded = str(getattr(getattr(config, section), key))
    assert all(c.isascii() and c.isprintable() for c in loaded), loaded
    assert not set(loaded) & set(" #\"'{};$%\\<>`|^")
