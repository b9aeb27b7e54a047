"""The `[web]` section of the configuration."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatmail_services.config import ConfigError, parse_config, parse_size


def web(text: str):
    return parse_config(f"[web]\n{text}\n").web


def test_defaults():
    section = parse_config("").web
    assert section.socket == "/run/chatmail/web.sock"
    assert section.root == "/var/lib/chatmail/www"
    assert (section.new_per_window, section.new_window) == (600, 60)
    assert (section.new_client_per_minute, section.new_client_burst) == (10, 20)
    assert section.new_client_zone == 1024 * 1024
    # the global ceiling stays far above what one client may get in a window
    assert section.new_per_window > 10 * (section.new_client_burst + section.new_client_per_minute)
    assert parse_config("").tls.self_signed is False
    assert section.login_host == section.operator_contact == ""


@pytest.mark.parametrize(
    "line",
    [
        "new_per_window = 0",
        "new_window = 86401",
        "new_client_per_minute = 0",
        "new_client_burst = 0",  # nginx refuses burst=0
        "new_client_zone = 16K",
        "new_client_zone = 2G",
        "new_client_zone = lots",
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


@given(st.integers(0, 1 << 31), st.sampled_from(["", "K", "M", "k", "m", "G"]))
def test_zone_size_is_taken_in_nginx_bounds_or_refused(number, unit):
    text = f"{number}{unit}"
    size = parse_size(text)
    try:
        value = web(f"new_client_zone = {text}").new_client_zone
    except ConfigError as exc:
        assert "[web] new_client_zone: must be between 32K and 1G" in str(exc)
        assert not 32 * 1024 <= size <= 1024**3
        return
    assert value == size and 32 * 1024 <= value <= 1024**3


@given(st.text(st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp")), max_size=20))
def test_any_zone_text_parses_or_is_a_config_error(text):
    try:
        value = web(f"new_client_zone = {text}").new_client_zone
    except ConfigError as exc:
        assert str(exc).count("\n") == 0 and "new_client_zone" in str(exc)
        return
    assert 32 * 1024 <= value <= 1024**3
