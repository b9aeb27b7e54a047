"""A relay config with a DKIM key and [dns] addresses, for the zone tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatmail_services.dkimkey import generate_key, public_key_b64

DNS = {
    "ipv4": "192.0.2.10",
    "ipv6": "2001:db8::10",
    "acme_account_uri": "https://acme-v02.api.letsencrypt.org/acme/acct/12345",
}


@pytest.fixture(scope="session")
def dkim_key(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("dkim") / "chatmail.private"
    generate_key(path)
    return path


@pytest.fixture
def zone_config(make_config, dkim_key):
    """`make_config` for a relay with the key above and the [dns] values above (overridable)."""

    def make(dns: dict | None = None, **sections):
        dkim = {"key_file": dkim_key, "selector": "opendkim", **sections.pop("dkim", {})}
        return make_config(dkim=dkim, dns={**DNS, **(dns or {})}, **sections)

    return make


@pytest.fixture
def public_b64(dkim_key) -> str:
    return public_key_b64(dkim_key)
