"""Zone-file text: TXT splitting and quoting, and the parser reading back what is rendered."""

from __future__ import annotations

import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest
from chatmail_services.dnszone.records import Record
from chatmail_services.dnszone.zonefile import (
    MAX_STRING,
    ZoneSyntaxError,
    parse_line,
    parse_zone,
    quote,
    render_zone,
    split_txt,
    tokenize,
)
from hypothesis import given
from hypothesis import strategies as st

labels = st.from_regex(r"[a-z0-9_]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
names = st.lists(labels, min_size=1, max_size=4).map(lambda parts: ".".join(parts) + ".")
targets = names
others = st.one_of(
    st.tuples(st.just("A"), st.ip_addresses(v=4).map(str)),
    st.tuples(st.just("AAAA"), st.ip_addresses(v=6).map(str)),
    st.tuples(st.just("CNAME"), targets),
    st.tuples(st.just("MX"), st.builds("{} {}".format, st.integers(0, 65535), targets)),
    st.tuples(
        st.just("SRV"),
        st.builds(
            "{} {} {} {}".format,
            st.integers(0, 9),
            st.integers(0, 9),
            st.integers(1, 65535),
            targets,
        ),
    ),
    st.tuples(
        st.just("CAA"),
        st.from_regex(r"[a-z0-9.;=:/-]{0,60}", fullmatch=True).map('0 issue "{}"'.format),
    ),
)
txts = st.tuples(st.just("TXT"), st.text(max_size=700))
records = st.builds(
    lambda name, typed, required: Record(name, typed[0], typed[1], required),
    names,
    st.one_of(others, txts),
    st.booleans(),
)


@given(st.text(max_size=2000))
def test_txt_split_keeps_every_byte_in_strings_of_at_most_255(value):
    chunks = split_txt(value)
    assert b"".join(chunks) == value.encode("utf-8")
    assert all(len(c) <= MAX_STRING for c in chunks)
    assert all(len(c) == MAX_STRING for c in chunks[:-1])
    assert len(chunks) == max(1, -(-len(value.encode("utf-8")) // MAX_STRING))


@given(st.binary(max_size=MAX_STRING))
def test_quoting_reads_back_as_the_same_bytes(data):
    text = quote(data)
    assert text.isascii() and text.isprintable()
    (token,) = tokenize(f"{text} ; comment", 1)
    assert token.quoted and token.data == data and token.raw == text


@given(st.binary(min_size=0, max_size=MAX_STRING))
def test_dnspython_reads_our_quoting_the_same(data):
    """An independent zone-file reader (dnspython) agrees with ours."""
    rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, quote(data))
    assert rdata.strings == (data,)


@given(st.lists(records, max_size=12))
def test_rendered_zone_parses_back_to_the_same_records(zone):
    ordered = [r for r in zone if r.required] + [r for r in zone if not r.required]
    assert parse_zone(render_zone(zone, "a title; with a semicolon")) == ordered


@given(st.text(max_size=200))
def test_any_line_is_a_record_or_nothing_or_a_clear_error(line):
    try:
        parse_line(line, True, 7)
    except ZoneSyntaxError as exc:
        assert str(exc).startswith("line 7: ")


def test_the_parser_is_case_insensitive_and_takes_ttl_and_class():
    (record,) = parse_zone('Relay.Example. 300 IN txt "v=spf1 " "a ~all"\n')
    assert record == Record("relay.example.", "TXT", "v=spf1 a ~all", True)


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ('x.example. TXT "open', "unterminated quoted string"),
        ("x.example. A", "A record without data"),
        ("x.example A 192.0.2.1", "not an absolute name"),
        ("  A 192.0.2.1", "no owner name"),
        ('x.example. "TXT" "a"', "no record type"),
        ("x.example. TXT ( a )", "parentheses"),
        ('x.example. TXT "\\999"', "not a byte"),
        ('x.example. TXT "\\255"', "not UTF-8"),
    ],
)
def test_bad_lines_are_named(line, error):
    with pytest.raises(ZoneSyntaxError, match=error):
        parse_zone(f"; comment\n{line}\n")
