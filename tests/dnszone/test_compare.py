"""Published against expected, semantically (no DNS): ok, missing, different."""

from __future__ import annotations

import pytest
from chatmail_services.dnszone.compare import (
    DIFFERENT,
    ERROR,
    MISSING,
    OK,
    compare,
    temporary_error,
)
from chatmail_services.dnszone.records import Record
from hypothesis import given
from hypothesis import strategies as st

DKIM = Record("s._domainkey.relay.example.", "TXT", "v=DKIM1;k=rsa;p=MIIBAQAB;s=email;t=s", True)
MX = Record("relay.example.", "MX", "10 relay.example.", True)
SPF = Record("relay.example.", "TXT", "v=spf1 a ~all", False)
CAA = Record("relay.example.", "CAA", '0 issue "letsencrypt.org;accounturi=https://a/1"', False)


@pytest.mark.parametrize(
    ("record", "published"),
    [
        (MX, ("10 RELAY.example",)),
        (MX, ("10 relay.example.",)),
        (Record("www.r.example.", "CNAME", "r.example.", True), ("R.Example",)),
        (Record("r.example.", "AAAA", "2001:db8::10", True), ("2001:0db8:0:0::10",)),
        (DKIM, ("v=DKIM1; k=rsa; t=s; s=email; p=MIIB AQAB",)),
        (DKIM, ("v=DKIM1;p=MIIBAQAB;s=email;t=s",)),  # k=rsa is the default
        (DKIM, ("v=DKIM1;k=rsa;p=MIIBAQAB;s=email;t=s", "google-site-verification=x")),
        (SPF, ("v=spf1 A ~all", "some other text")),
        (CAA, ('0 issue "letsencrypt.org; accounturi=https://a/1"', '0 issue "sectigo.com"')),
        (
            Record("_imap._tcp.r.example.", "SRV", "0 1 143 r.example.", False),
            ("0 1 143 R.EXAMPLE",),
        ),
    ],
)
def test_equivalent_values_are_ok(record, published):
    finding = compare(record, published)
    assert finding.status == OK, finding.line()
    assert not finding.failed
    kind = "required" if record.required else "recommended"
    assert finding.line().split() == ["ok", kind, record.name, record.rtype]


@pytest.mark.parametrize(
    ("record", "published"),
    [
        (MX, ("20 relay.example.",)),
        (MX, ("10 relay.example.", "20 other.example.")),
        (DKIM, ("v=DKIM1;k=rsa;p=OTHERKEY;s=email;t=s",)),
        (DKIM, ("v=DKIM1;k=rsa;p=MIIBAQAB;s=email",)),
        (SPF, ("v=spf1 a ~all", "v=spf1 mx -all")),  # two SPF records are an error
        (CAA, ('0 issue "letsencrypt.org"',)),
        (Record("r.example.", "A", "192.0.2.10", True), ("192.0.2.11",)),
    ],
)
def test_other_values_are_different_with_both_shown(record, published):
    finding = compare(record, published)
    assert finding.status == DIFFERENT
    assert finding.failed == record.required
    line = finding.line()
    assert line.startswith(f"different {'required' if record.required else 'recommended'}")
    assert all(value in line for value in published)
    assert line.endswith(f"expected {finding.show(record.value)}")


@pytest.mark.parametrize(
    ("record", "published"),
    [
        (MX, ()),
        (DKIM, ("google-site-verification=x",)),  # TXT of another kind does not count
        (CAA, ('0 iodef "mailto:x@relay.example"',)),
    ],
)
def test_nothing_of_the_kind_is_missing(record, published):
    finding = compare(record, published)
    assert finding.status == MISSING and finding.failed == record.required
    assert finding.line().endswith(f"expected {finding.show(record.value)}")


def test_a_temporary_error_is_neither_missing_nor_a_failure():
    finding = temporary_error(MX, "DNS look-up of MX failed: LifetimeTimeout")
    assert finding.status == ERROR and not finding.failed
    assert "temporary DNS error" in finding.line() and "LifetimeTimeout" in finding.line()


def test_txt_values_in_lines_are_quoted():
    line = compare(SPF, ('v=spf1 "odd"',)).line()
    assert line.endswith('published "v=spf1 \\"odd\\""; expected "v=spf1 a ~all"')


@given(st.text(max_size=400), st.text(max_size=400))
def test_a_txt_value_is_ok_iff_it_means_the_same(expected, published):
    record = Record("x.example.", "TXT", expected, True)
    assert compare(record, (expected,)).status == OK
    finding = compare(record, (published,))
    assert finding.status in (OK, MISSING, DIFFERENT)
    if published == expected:
        assert finding.status == OK


labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
hosts = st.lists(labels, min_size=1, max_size=3).map(".".join)


def respell(host: str, upper: list[bool], dot: bool) -> str:
    """The same name in other letter case, with or without trailing dot."""
    flags = (upper + [False] * len(host))[: len(host)]
    mixed = "".join(c.upper() if u else c for c, u in zip(host, flags, strict=True))
    return mixed + ("." if dot else "")


@given(hosts, st.integers(0, 65535), st.lists(st.booleans()), st.booleans())
def test_mx_and_cname_targets_compare_without_case_and_trailing_dot(host, pref, upper, dot):
    mx = Record("r.example.", "MX", f"{pref} {host}.", True)
    assert compare(mx, (f"{pref} {respell(host, upper, dot)}",)).status == OK
    assert compare(mx, (f"{pref + 1} {host}.",)).status == DIFFERENT
    assert compare(mx, (f"{pref} x{host}.",)).status == DIFFERENT
    cname = Record("www.r.example.", "CNAME", f"{host}.", True)
    assert compare(cname, (respell(host, upper, dot),)).status == OK


keys = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", min_size=8
)


@given(
    keys, st.lists(st.integers(0, 400), max_size=5), st.permutations(["k=rsa", "s=email", "t=s"])
)
def test_dkim_compares_by_key_and_tags(key, cuts, tags):
    record = Record("s._domainkey.r.example.", "TXT", f"v=DKIM1;k=rsa;p={key};s=email;t=s", True)
    spaced = key
    for cut in sorted(set(cuts), reverse=True):
        spaced = spaced[:cut] + " " + spaced[cut:]
    reordered = "; ".join(["v=DKIM1", f"p={spaced}", *tags])
    assert compare(record, (reordered,)).status == OK
    other = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert compare(record, (f"v=DKIM1;k=rsa;p={other};s=email;t=s",)).status == DIFFERENT
    assert compare(record, (f"v=DKIM1;k=rsa;p={key};s=email",)).status == DIFFERENT
