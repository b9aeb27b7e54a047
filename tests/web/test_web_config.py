"""The `[web]` section of the configuration."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatmail_services.config import ConfigError, parse_config


def web(text: str):
    return parse_config(f"[web]\n{text}\n").web


def test_defaults():
    section = parse_config("").web
    assert section.socket == "/run/chatmail/web.sock"
    assert section.root == "/var/lib/chatmail/www"
    assert (section.new_per_window, section.new_window) == (60, 60)
    assert parse_config("").tls.self_signed is False
    assert section.login_host == section.operator_contact == ""


@pytest.mark.parametrize(
    "line",
    [
        "new_per_window = 0",
        "new_window = 86401",
        "login_host = not a host",
        "operator_contact = nobody",
        "operator_contact = a@b@",
        "operator_contact = <a>@chat.example",
        "root = relative/path",
    ],
)
def test_bad_values_name_the_key(line):
    with pytest.raises(ConfigError) as info:
        web(line)
    assert f"[web] {line.split()[0]}:" in str(info.value)


def test_contact_domain_is_lower_cased():
    assert web("operator_contact = Ops@Chat.Example").operator_contact == "Ops@chat.example"


@given(st.text(max_size=60))
def test_any_contact_parses_or_is_a_config_error(text):
    try:
        value = web(f"operator_contact = {text}").operator_contact
    except ConfigError:
        return
    assert value == "" or ("@" in value and all(" " < c <= "~" for c in value))
