"""The token store's rules and file format (pure, with hypothesis)."""

from __future__ import annotations

import pytest
from chatmail_services.metadata import tokens
from chatmail_services.metadata.tokens import Token, TokenError
from hypothesis import given
from hypothesis import strategies as st

DAY = 86400
MAX_AGE = 90 * DAY
valid = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40)
stamps = st.integers(0, 2**40)


def test_validation():
    assert tokens.validate("openpgp:" + "A" * 4088) == "openpgp:" + "A" * 4088
    for bad in ("", "x" * 4097, "a b", "a\tb", "a\x01", "a\x7f", "caf\u00e9", "a\udcff", "a\n"):
        with pytest.raises(TokenError):
            tokens.validate(bad)


@given(st.text(max_size=5000))
def test_validate_accepts_exactly_visible_ascii_up_to_4096(text):
    ok = 0 < len(text) <= 4096 and all(0x21 <= ord(c) <= 0x7E for c in text)
    try:
        assert tokens.validate(text) == text
        assert ok
    except TokenError as exc:
        assert not ok
        assert text not in str(exc) or not text  # the error never carries the token


def test_the_client_sequence():
    store = tokens.add([], "1111", 100, 10, MAX_AGE)
    assert tokens.joined(store) == "1111"
    store = tokens.add(store, "2222", 200, 10, MAX_AGE)
    assert tokens.joined(store) == "1111 2222"
    store = tokens.add(store, "1111", 300, 10, MAX_AGE)
    assert tokens.joined(store) == "2222 1111"
    assert store == [Token("2222", 200), Token("1111", 300)]


def test_forgotten_after_max_age():
    store = tokens.add([], "old", 0, 10, MAX_AGE)
    store = tokens.add(store, "new", MAX_AGE - 1, 10, MAX_AGE)
    assert tokens.joined(tokens.live(store, MAX_AGE - 1, MAX_AGE)) == "old new"
    assert tokens.joined(tokens.live(store, MAX_AGE, MAX_AGE)) == "new"
    # setting it again keeps it another max_age
    store = tokens.add(store, "old", MAX_AGE - 1, 10, MAX_AGE)
    assert tokens.joined(tokens.live(store, 2 * MAX_AGE - 2, MAX_AGE)) == "new old"


@given(st.lists(st.tuples(valid, st.integers(0, 400 * DAY))), st.integers(1, 5))
def test_add_invariants(sets, max_tokens):
    """Whatever the sequence of sets (times in any order): no duplicate, at most max_tokens,
    the token just set is present and last, nothing expired survives a set."""
    store: list[Token] = []
    for value, now in sets:
        store = tokens.add(store, value, now, max_tokens, MAX_AGE)
        values = [t.value for t in store]
        assert len(values) == len(set(values)) <= max_tokens
        assert store[-1] == Token(value, now)
        assert all(now - t.set_at < MAX_AGE for t in store)


@given(st.lists(st.tuples(valid, st.integers(0, 10**6)), unique_by=lambda x: x[0]))
def test_the_last_set_are_kept(sets):
    sets.sort(key=lambda s: s[1])
    store: list[Token] = []
    for value, now in sets:
        store = tokens.add(store, value, now, 3, MAX_AGE)
    assert [t.value for t in store] == [value for value, _ in sets][-3:]


@given(st.lists(st.builds(Token, valid, stamps)))
def test_file_round_trip(store):
    assert tokens.parse_file(tokens.format_file(store)) == store


@given(st.text())
def test_parse_file_never_raises_and_keeps_only_valid_tokens(text):
    for token in tokens.parse_file(text):
        assert tokens.validate(token.value) == token.value


def test_parse_file_skips_damaged_lines():
    text = "1\tgood\nnot a line\n\t\nx\tbad\n2\ttwo words\n3\tfine\n1234567890123456\tlong\n"
    assert tokens.parse_file(text) == [Token("good", 1), Token("fine", 3)]


@given(st.lists(st.builds(Token, valid, stamps)), valid)
def test_remove(store, value):
    assert value not in [t.value for t in tokens.remove(store, value)]
