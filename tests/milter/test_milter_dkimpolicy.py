"""The pure DKIM policy: the tag-list parser, the choice of signatures, the verdicts."""

from __future__ import annotations

import ipaddress

import pytest
from chatmail_services.milter import dkimpolicy
from chatmail_services.milter.dkimpolicy import Check, TagListError, parse_tag_list
from hypothesis import given
from hypothesis import strategies as st

TAG_NAMES = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,6}", fullmatch=True)
VALCHARS = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=";"))
WORDS = st.lists(VALCHARS.filter(bool), min_size=0, max_size=4)
SPACE = st.sampled_from(["", " ", "\t", "\r\n ", "  \r\n\t"])


@st.composite
def tag_lists(draw) -> tuple[str, dict[str, str]]:
    names = draw(st.lists(TAG_NAMES, min_size=1, max_size=6, unique=True))
    tags, specs = {}, []
    for name in names:
        words = draw(WORDS)
        value = draw(st.sampled_from([" ", "\r\n\t", "  "])).join(words)
        tags[name] = value
        specs.append(f"{draw(SPACE)}{name}{draw(SPACE)}={draw(SPACE)}{value}{draw(SPACE)}")
    text = ";".join(specs) + draw(st.sampled_from(["", ";", "; "]))
    return text, tags


@given(tag_lists())
def test_tag_lists_round_trip(case):
    text, tags = case
    assert parse_tag_list(text) == tags


@given(st.text(max_size=80))
def test_any_text_parses_or_raises_the_parser_error(text):
    try:
        tags = parse_tag_list(text)
    except TagListError as exc:
        assert str(exc)
    else:
        for name, value in tags.items():
            assert name[0].isalpha() and ";" not in value and "=" not in name


@given(tag_lists(), TAG_NAMES)
def test_a_duplicate_tag_is_an_error(case, name):
    text = case[0].rstrip("; \t\r\n")
    with pytest.raises(TagListError, match="duplicate"):
        parse_tag_list(f"{name}=1; {text}; {name}=2")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("v=1; d", "without '='"),
        ("v=1;; d=x", "without '='"),
        ("1v=1", "bad tag name"),
        ("v=1; d=ex\x00ample", "bad characters"),
        ("v=1; d=é", "bad characters"),
        ("v=1; d=a\nb", "bad characters"),
        ("", "without '='"),
    ],
)
def test_malformed_tag_lists_say_why(text, message):
    with pytest.raises(TagListError, match=message):
        parse_tag_list(text)


def test_real_signature_value_parses():
    value = (
        "v=1; a=rsa-sha256; c=relaxed/simple; d=Chat.Example;\r\n i=@chat.example; "
        "s=opendkim; h=from : to;\r\n bh=abc=; b=AAA\r\n BBB"
    )
    tags = parse_tag_list(value)
    assert tags["d"] == "Chat.Example" and tags["b"] == "AAA\r\n BBB" and tags["h"] == "from : to"


# -- selection and verdicts --


def sig(domain="other.example", extra="", h="from") -> tuple[str, str]:
    return ("dkim-signature", f"v=1; a=rsa-sha256; d={domain}; s=sel; h={h}; bh=x; b=y{extra}")


def headers(*sigs, sender="<x@other.example>"):
    return [*sigs, ("from", sender), ("to", "<b@chat.example>")]


class Checker:
    """Records the indices asked and answers from a table."""

    def __init__(self, answers: dict[int, Check]):
        self.answers, self.asked = answers, []

    def __call__(self, index: int) -> Check:
        self.asked.append(index)
        return self.answers[index]


def test_no_signature_is_554_no_dkim_signature_found():
    verdict = dkimpolicy.decide(headers(), Checker({}), 5)
    assert (verdict.code, verdict.xcode, verdict.text) == (
        "554",
        "5.7.1",
        "No DKIM signature found",
    )
    assert verdict.reason == "no DKIM signature"


def test_valid_aligned_signature_accepts():
    check = Checker({0: Check.VALID})
    verdict = dkimpolicy.decide(headers(sig("Other.Example")), check, 5)
    assert verdict.accepted and verdict.reason == "valid aligned DKIM signature"
    assert check.asked == [0]


def test_signatures_of_other_domains_are_never_checked():
    check = Checker({})
    hs = headers(sig("example"), sig("sub.other.example"), sig("other.example.evil"))
    verdict = dkimpolicy.decide(hs, check, 5)
    assert check.asked == []
    assert verdict.text == "No valid DKIM signature found" and verdict.code == "554"
    assert verdict.reason == "3 DKIM signatures, none usable and aligned"


def test_a_signature_with_l_tag_is_never_used():
    check = Checker({1: Check.VALID})
    verdict = dkimpolicy.decide(headers(sig(extra="; l=10"), sig()), check, 5)
    assert check.asked == [1] and verdict.accepted
    check = Checker({})
    only_l = dkimpolicy.decide(headers(sig(extra="; l=10")), check, 5)
    assert check.asked == [] and only_l.text == "No valid DKIM signature found"


def test_a_signature_whose_h_lacks_from_is_never_used():
    """RFC 6376 6.1.1: a signature that does not cover From says nothing about it."""
    check = Checker({0: Check.VALID, 1: Check.VALID})
    no_from = sig(h="subject : to")
    verdict = dkimpolicy.decide(headers(no_from), check, 5)
    assert check.asked == [] and not verdict.accepted
    assert (verdict.code, verdict.text) == ("554", "No valid DKIM signature found")
    assert dkimpolicy.decide(headers(no_from, sig(h="Subject:\r\n FROM")), check, 5).accepted
    assert check.asked == [1]


@pytest.mark.parametrize("h", ["", "x-from", "from-x:to", "fro m", "subject:to:reply-to"])
def test_h_lists_without_the_from_field_do_not_count(h):
    check = Checker({0: Check.VALID})
    assert not dkimpolicy.decide(headers(sig(h=h)), check, 5).accepted
    assert check.asked == []


FIELD_NAMES = st.sampled_from(["from", "From", "FROM", "to", "subject", "x-from", "fromx", "date"])


@given(st.lists(FIELD_NAMES, max_size=6), st.sampled_from([":", " : ", ":\r\n\t", "\t:"]))
def test_a_signature_is_used_exactly_when_its_h_names_from(names, colon):
    value = f"v=1; a=rsa-sha256; d=other.example; s=sel; h={colon.join(names)}; bh=x; b=y"
    check = Checker({0: Check.VALID})
    verdict = dkimpolicy.decide(headers(("dkim-signature", value)), check, 5)
    assert verdict.accepted == ("from" in [n.lower() for n in names])


def test_malformed_signature_is_skipped_not_fatal():
    check = Checker({1: Check.VALID})
    bad = ("dkim-signature", "v=1; d=other.example; s=sel; d=twice")
    assert dkimpolicy.decide(headers(bad, sig()), check, 5).accepted
    assert check.asked == [1]


def test_invalid_signatures_are_554_and_checking_stops_at_the_first_valid():
    check = Checker({0: Check.INVALID, 1: Check.INVALID})
    verdict = dkimpolicy.decide(headers(sig(), sig()), check, 5)
    assert verdict.text == "No valid DKIM signature found"
    assert verdict.reason == "2 aligned DKIM signatures, none valid"
    check = Checker({0: Check.INVALID, 1: Check.VALID, 2: Check.VALID})
    assert dkimpolicy.decide(headers(sig(), sig(), sig()), check, 5).accepted
    assert check.asked == [0, 1]


def test_at_most_max_signatures_are_checked():
    check = Checker(dict.fromkeys(range(10), Check.INVALID))
    dkimpolicy.decide(headers(*[sig()] * 10), check, 3)
    assert check.asked == [0, 1, 2]
    check = Checker({**dict.fromkeys(range(3), Check.INVALID), 3: Check.VALID})
    assert not dkimpolicy.decide(headers(*[sig()] * 4), check, 3).accepted


def test_dns_failure_is_a_temporary_failure_unless_another_is_valid():
    verdict = dkimpolicy.decide(headers(sig()), Checker({0: Check.TEMPFAIL}), 5)
    assert verdict.action == "tempfail"
    assert (verdict.code, verdict.xcode) == ("451", "4.7.5")
    assert verdict.reason == "DKIM key lookup failed"
    mixed = Checker({0: Check.TEMPFAIL, 1: Check.INVALID})
    assert dkimpolicy.decide(headers(sig(), sig()), mixed, 5).code == "451"
    rescued = Checker({0: Check.TEMPFAIL, 1: Check.VALID})
    assert dkimpolicy.decide(headers(sig(), sig()), rescued, 5).accepted


@pytest.mark.parametrize(
    ("sender", "client"),
    [
        ("<user@[192.0.2.1]>", "192.0.2.1"),
        ("user@[192.0.2.1]", "::ffff:192.0.2.1"),
        ('"Some One" <u@[IPv6:2001:db8::1]>', "2001:db8:0:0::1"),
        ("<u@[IPv6:2001:DB8::1]>", "2001:db8::1"),
    ],
)
def test_address_literal_from_of_the_connecting_client_needs_no_dkim(sender, client):
    check = Checker({})
    verdict = dkimpolicy.decide(headers(sender=sender), check, 5, ipaddress.ip_address(client))
    assert verdict.accepted
    assert verdict.reason == "From is the sending server's address literal: DKIM not required"
    assert check.asked == []


@pytest.mark.parametrize(
    ("sender", "client"),
    [
        ("<user@[192.0.2.1]>", "192.0.2.2"),
        ("<user@[192.0.2.1]>", None),  # no address from connect (e.g. a unix socket)
        ("<u@[IPv6:2001:db8::1]>", "2001:db8::2"),
        ("<u@[IPv6:::ffff:192.0.2.1]>", "192.0.2.2"),
    ],
)
def test_address_literal_from_of_another_address_is_refused(sender, client):
    check = Checker({0: Check.VALID})
    ip = None if client is None else ipaddress.ip_address(client)
    verdict = dkimpolicy.decide(headers(sig(), sender=sender), check, 5, ip)
    assert (verdict.action, verdict.code, verdict.xcode) == ("reject", "554", "5.7.1")
    assert verdict.text == "From address literal is not the sending server's address"
    assert verdict.reason == "From address literal differs from the client address"
    assert check.asked == []  # no signature can stand in for the address


@given(st.ip_addresses(), st.ip_addresses())
def test_an_address_literal_passes_exactly_when_it_is_the_client(literal_ip, client):
    literal = f"[IPv6:{literal_ip}]" if literal_ip.version == 6 else f"[{literal_ip}]"
    verdict = dkimpolicy.decide(headers(sender=f"<u@{literal}>"), Checker({}), 5, client)

    def plain(ip):
        return getattr(ip, "ipv4_mapped", None) or ip

    assert verdict.accepted == (plain(literal_ip) == plain(client))
    assert str(client) not in verdict.reason + verdict.text  # never an IP in a log line


@pytest.mark.parametrize(
    "sender",
    ["<user@[999.0.2.1]>", "<user@[IPv6:192.0.2.1]>", "<a@[192.0.2.1]>, <b@other.example>"],
)
def test_fake_address_literals_are_not_exempt(sender):
    verdict = dkimpolicy.decide(headers(sender=sender), Checker({}), 5)
    assert not verdict.accepted and verdict.text == "No DKIM signature found"


def test_no_single_from_means_nothing_aligns():
    hs = [sig(), ("from", "<x@other.example>"), ("from", "<y@other.example>")]
    check = Checker({0: Check.VALID})
    verdict = dkimpolicy.decide(hs, check, 5)
    assert check.asked == [] and verdict.text == "No valid DKIM signature found"
    assert verdict.reason == "no single From address to align with"


@given(st.lists(st.sampled_from(list(Check)), max_size=6), st.integers(0, 6))
def test_verdict_never_accepts_without_a_valid_result(results, extra):
    verdict = dkimpolicy.verdict(len(results) + extra, results)
    assert verdict.accepted == (Check.VALID in results)
    if not verdict.accepted and Check.TEMPFAIL in results:
        assert verdict.code.startswith("4")


@given(st.ip_addresses(), st.from_regex(r"[a-z0-9.]{1,10}", fullmatch=True), st.booleans())
def test_every_ip_literal_is_recognised(ip, local, angle):
    literal = f"[IPv6:{ip}]" if ip.version == 6 else f"[{ip}]"
    value = f"<{local}@{literal}>" if angle else f"{local}@{literal}"
    assert dkimpolicy.from_domain([("from", value)]) == dkimpolicy.FromDomain(literal, True, ip)


@given(st.text(max_size=60))
def test_from_domain_of_any_text_never_raises_and_literals_are_real(value):
    import ipaddress

    found = dkimpolicy.from_domain([("from", value)])
    if found.literal:
        inner = found.domain.strip("[]").removeprefix("IPv6:")
        ipaddress.ip_address(inner)
    elif found.domain is not None:
        assert "@" not in found.domain and found.domain == found.domain.lower()
