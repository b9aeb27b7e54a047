"""chatmail_services.dnsquery: a machine without a resolver answers temporarily, never crashes."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

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


# -- names that cannot exist in the DNS (RFC 1035 2.3.4): never looked up, never a 4xx --

LABELS = st.from_regex(r"[a-z0-9_-]{1,63}", fullmatch=True)


def wire_length(labels: list[str]) -> int:
    return sum(len(label) + 1 for label in labels) + 1


@given(st.lists(LABELS, min_size=1, max_size=8).filter(lambda ls: wire_length(ls) <= 255))
def test_names_of_labels_up_to_63_octets_and_255_in_all_parse(labels):
    name = dnsquery.parse_name(".".join(labels) + ".")
    assert [label.decode() for label in name.labels[:-1]] == labels


@given(
    st.lists(LABELS, max_size=3),
    st.sampled_from(["x" * 64, "", "y" * 200]),
    st.lists(LABELS, max_size=3),
)
def test_a_label_over_63_octets_or_an_empty_one_is_a_bad_name(before, bad, after):
    text = ".".join([*before, bad, *after]) + "._domainkey.example."
    with pytest.raises(dnsquery.BadName, match="not a DNS name: "):
        dnsquery.parse_name(text)


@given(st.lists(st.from_regex(r"[a-z0-9-]{40,63}", fullmatch=True), min_size=7, max_size=12))
def test_a_name_over_255_octets_is_a_bad_name(labels):
    assert wire_length(labels) > 255
    with pytest.raises(dnsquery.BadName, match="longer than 255 octets"):
        dnsquery.parse_name(".".join(labels) + ".")


@given(st.text(max_size=300))
def test_any_text_is_a_name_or_a_bad_name(text):
    try:
        name = dnsquery.parse_name(text)
    except dnsquery.BadName as exc:
        assert str(exc).startswith("not a DNS name: ")
    else:
        assert len(name.to_wire()) <= 255 and all(len(label) <= 63 for label in name.labels)


@pytest.mark.parametrize(
    "name",
    ["s" * 64 + "._domainkey.example.org.", "sel..example.org.", "x." + "a." * 127],
)
def test_a_bad_name_is_an_empty_answer_without_asking(name):
    """No server is configured: asking would raise DnsTemporaryError (the test above)."""
    resolver = dnsquery.make_resolver((), 2.0, resolv_conf="/nonexistent")
    assert dnsquery.txt_strings(resolver, name) == ((), 0)
    assert dnsquery.query(resolver, name, "TXT") == dnsquery.Answer((), 0)
