"""chatmail_services.dnsquery: a machine without a resolver answers temporarily, never crashes."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatmail_services import dnsquery


@pytest.mark.parametrize("content", [None, "", "# no nameserver line\nsearch example.org\n"])
def test_without_a_usable_resolv_conf_every_lookup_is_a_temporary_error(tmp_path, content):
    conf = tmp_path / "resolv.conf"
    if content is not None:
        conf.write_text(content)
    resolver = dnsquery.make_resolver((), 2.0, resolv_conf=str(conf))
    assert resolver.nameservers == []
    with pytest.raises(dnsquery.DnsTemporaryError):
        dnsquery.txt_strings(resolver, "chatmail._domainkey.example.org")
    with pytest.raises(dnsquery.DnsTemporaryError):
        dnsquery.query(resolver, "example.org", "MX")


def test_a_resolv_conf_is_read(tmp_path: Path):
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 127.53.7.7\n")
    resolver = dnsquery.make_resolver((), 2.0, resolv_conf=str(conf))
    assert resolver.nameservers == ["127.53.7.7"]


def test_configured_nameservers_win_and_keep_their_ports():
    resolver = dnsquery.make_resolver((("127.53.7.7", 5353),), 3.0, resolv_conf="/nonexistent")
    assert resolver.nameservers == ["127.53.7.7"] and resolver.port == 5353
    assert resolver.lifetime == 3.0
