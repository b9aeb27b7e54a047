"""Key parsing (pure, with hypothesis): what Dovecot's mail_attribute_dict sends."""

from __future__ import annotations

from chatmail_services.metadata import keys
from chatmail_services.metadata.keys import PrivateKey, ServerKey, parse_key
from hypothesis import given
from hypothesis import strategies as st

GUID = "0123456789abcdef0123456789abcdef"
guids = st.text("0123456789abcdef", min_size=32, max_size=32)
names = st.text(st.characters(codec="utf-8", exclude_characters="\0"), min_size=1)


def test_the_keys_dovecot_sends():
    assert parse_key(f"priv/{GUID}/devicetoken") == PrivateKey(GUID, "devicetoken")
    server = f"shared/{GUID}/vendor/vendor.dovecot/pvt/server/vendor/deltachat/"
    for name in ("maxsmtprecipients", "irohrelay", "turn", "appversions"):
        assert parse_key(server + name) == ServerKey(name)
    assert keys.is_device_token(parse_key(f"priv/{GUID}/devicetoken"))


def test_what_is_not_ours():
    server = f"shared/{GUID}/vendor/vendor.dovecot/pvt/server/vendor/deltachat/"
    for key in (
        "",
        "priv",
        f"priv/{GUID}",
        f"priv/{GUID}/",
        f"priv/{GUID.upper()}/devicetoken",
        f"priv/{GUID[:-1]}/devicetoken",
        "priv//devicetoken",
        f"shared/{GUID}/comment",
        server + "nosuchkey",
        server,
        f"other/{GUID}/devicetoken",
        "shared/passdb/x",
    ):
        assert parse_key(key) is None, key
    assert not keys.is_device_token(parse_key(f"priv/{GUID}/devicetoken2"))
    assert not keys.is_device_token(parse_key(f"shared/{GUID}/devicetoken"))


@given(st.text())
def test_never_raises(key):
    result = parse_key(key)
    assert result is None or isinstance(result, PrivateKey | ServerKey)


@given(guids, names)
def test_private_keys_round_trip(guid, name):
    assert parse_key(f"priv/{guid}/{name}") == PrivateKey(guid, name)


@given(guids, st.sampled_from(keys.SERVER_KEYS))
def test_server_keys_round_trip(guid, name):
    assert parse_key(f"shared/{guid}/{keys.SERVER_PREFIX}{name}") == ServerKey(name)


@given(st.text(), st.text())
def test_a_key_outside_the_prefix_is_never_a_server_key(guid, rest):
    key = f"shared/{guid}/{rest}"
    if not rest.startswith(keys.SERVER_PREFIX):
        assert not isinstance(parse_key(key), ServerKey)
