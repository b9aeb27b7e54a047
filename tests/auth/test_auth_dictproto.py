"""The dict protocol module: escaping, %E keys, line parsing (pure, with hypothesis)."""

from __future__ import annotations

from harness.authtools import esc_e
from hypothesis import given
from hypothesis import strategies as st

from chatmail_services import dictproto as dp

# text with the characters that matter here well represented
special = st.sampled_from(["\x01", "\t", "\r", "\n", '"', "'", "\\", "/", "\0", "é", "1", "t"])
texts = st.lists(st.one_of(special, st.characters()), max_size=40).map("".join)


@given(texts)
def test_tab_escape_round_trips(text):
    escaped = dp.tab_escape(text)
    assert not any(ch in escaped for ch in "\t\r\n")
    assert dp.tab_unescape(escaped) == text


def test_tab_escape_matches_dovecot():
    assert dp.tab_escape("a\tb\nc\rd\x01e") == "a\x01tb\x01nc\x01rd\x011e"
    assert dp.tab_unescape("\x01x") == "x"


@given(texts)
def test_tab_unescape_never_raises(text):
    dp.tab_unescape(text)


@given(texts, texts)
def test_passdb_key_round_trips(password, user):
    assert dp.split_passdb_key(esc_e(password) + '"' + esc_e(user)) == (password, user)


def test_passdb_key_examples():
    assert dp.split_passdb_key('pa\\"ss\\\'w\\\\d/"u@x') == ("pa\"ss'w\\d/", "u@x")
    assert dp.split_passdb_key("no separator") is None


@given(st.lists(texts, min_size=1, max_size=6), st.sampled_from("LIBSUATCRH"))
def test_parse_line_recovers_fields(fields, cmd):
    line = cmd + "\t".join(dp.tab_escape(f) for f in fields)
    parsed = dp.parse_line(line)
    if isinstance(parsed, dp.Lookup):
        assert parsed.key == fields[0]
        assert parsed.user == (fields[1] if len(fields) > 1 else "")
    elif isinstance(parsed, dp.Change):
        assert (parsed.op, parsed.tid, parsed.key) == (cmd, fields[0], fields[1])
    elif isinstance(parsed, dp.Begin | dp.Commit | dp.Rollback):
        assert parsed.tid == fields[0]


@given(st.text())
def test_parse_line_never_raises(line):
    result = dp.parse_line(line)
    assert isinstance(result, dp.Hello | dp.Lookup | dp.Iterate | dp.Begin | dp.Change | dp.Commit
                      | dp.Rollback | dp.Bad)  # fmt: skip


def test_hello_versions_and_extra_fields():
    assert dp.parse_line("H3\t2\t0\t\tauth") == dp.Hello(3, 2, "0", "", "auth")
    assert dp.parse_line("H4\t0\t0\t\tlastlogin\textra") == dp.Hello(4, 0, "0", "", "lastlogin")
    bad = dp.parse_line("H5\t0\t0\t\tauth")
    assert isinstance(bad, dp.Bad) and not bad.reply_due
    assert isinstance(dp.parse_line("Hx"), dp.Bad)


def test_commands():
    assert dp.parse_line("Lshared/userdb/a@b\ta@b") == dp.Lookup("shared/userdb/a@b", "a@b")
    assert dp.parse_line("I0\t0\tshared/userdb/\t") == dp.Iterate(0, 0, "shared/userdb/", "")
    assert dp.parse_line("B7\tuser\tfuture-field") == dp.Begin("7", "user")
    assert dp.parse_line("S7\tk\tv") == dp.Change("S", "7", "k", "v")
    assert dp.parse_line("U7\tk") == dp.Change("U", "7", "k", "")
    assert dp.parse_line("A7\tk\t-2") == dp.Change("A", "7", "k", "-2")
    assert dp.parse_line("T7\t1700000000\t5") == dp.Change("T", "7", "1700000000", "5")
    assert dp.parse_line("C7") == dp.Commit("7")
    assert dp.parse_line("R7") == dp.Rollback("7")


def test_malformed_lines_say_whether_a_reply_is_due():
    for line in ["", "X", "Ifoo\t0\tpath", "I0", "C", "?"]:
        bad = dp.parse_line(line)
        assert isinstance(bad, dp.Bad) and bad.reply_due, line
    for line in ["B", "S1", "U", "Hbad"]:
        bad = dp.parse_line(line)
        assert isinstance(bad, dp.Bad) and not bad.reply_due, line


def test_replies():
    assert dp.ok('{"a":"b\tc"}') == 'O{"a":"b\x01tc"}\n'
    assert dp.NOT_FOUND == "N\n"
    assert dp.fail("x\ny") == "Fx\x01ny\n"
    assert dp.iter_row("shared/userdb/a@b") == "Oshared/userdb/a@b\t\n"
    assert dp.ITER_END == "\n"
    assert dp.commit_fail("3", "no") == "F3\tno\n"
