"""Maildir file-name parsing: what the name tells without a stat."""

from __future__ import annotations

from chatmail_services.expire.maildir import is_dovecot_file, parse_name, parse_name_slowly
from hypothesis import given
from hypothesis import strategies as st

unique = st.text(
    alphabet=st.characters(blacklist_characters=",:/\0", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=30,
)


def test_dovecot_names():
    assert parse_name("1700000000.M123P456.host,S=1234,W=1260:2,S") == (1700000000, 1234)
    assert parse_name("1700000000.M123P456.host,S=1234,W=1260") == (1700000000, 1234)
    assert parse_name("1700000000.M1P2.host,W=9,S=77:2,") == (1700000000, 77)
    assert parse_name("1700000000.M1P2.host:2,S") == (1700000000, None)
    assert parse_name("msg.eml") == (None, None)
    assert parse_name("1700000000") == (None, None)  # no unique part: not a Maildir name
    assert parse_name("12x.host,S=5") == (None, 5)
    assert parse_name("1.h,S=:2,") == (1, None)
    assert parse_name("1.h,S=-5") == (1, None)
    assert parse_name("\u0661\u0662.h,S=\u0663") == (None, None)  # non-ASCII digits


@given(
    st.integers(min_value=0, max_value=10**12 - 1),
    unique,
    st.integers(min_value=0, max_value=2**63),
    st.integers(min_value=0, max_value=2**63),
    st.one_of(st.none(), st.text(alphabet="PRSTDFabc", max_size=6)),
)
def test_round_trip(time, unique_part, size, vsize, flags):
    name = f"{time}.{unique_part},S={size},W={vsize}"
    if flags is not None:
        name += f":2,{flags}"
    assert parse_name(name) == (time, size)


@given(st.text(max_size=80))
def test_never_raises_and_only_reports_what_is_there(name):
    time, size = parse_name(name)
    if time is not None:
        assert name.startswith(f"{time}.")
    if size is not None:
        assert f",S={size}" in name


def test_dovecot_files():
    names = ["dovecot-uidlist", "dovecot.index", "dovecot.index.log", "dovecot.index.cache"]
    names += ["dovecot-keywords", "subscriptions", "maildirsize", "dovecot.list.index"]
    for name in names:
        assert is_dovecot_file(name)
    assert not is_dovecot_file("1700000000.M1P2.host,S=1,W=1:2,S")


@given(
    st.one_of(
        st.text(max_size=60),
        st.text(alphabet="0123456789.,:SW=x\u0661", max_size=40),
        st.builds(
            lambda t, u, s, rest: f"{t}.{u},S={s}{rest}",
            st.integers(0, 10**14),
            st.text(alphabet="MPQ0123456789.x,:", max_size=10),
            st.one_of(st.integers(0, 10**22).map(str), st.text(alphabet="0123456789x", max_size=3)),
            st.text(alphabet=",:W=2S0123456789", max_size=8),
        ),
    )
)
def test_fast_path_agrees_with_the_field_by_field_parser(name):
    assert parse_name(name) == parse_name_slowly(name)
