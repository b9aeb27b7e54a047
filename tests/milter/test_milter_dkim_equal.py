"""The fast DKIM path gives stock dkimpy's results: the independent check of issue 23.

Oracle: stock dkimpy, the venv's 1.1.8 and Debian 12's 1.1.4 (`dkim.rfc822_parse`, its
canonicalization classes, `RE_BTAG`, `select_headers`, `hash_headers`,
`dkim.DKIM(message).verify(idx, dnsfunc)`, `dkim.DKIM(message).sign(...)`) on the same input
with the same DNS function. Compared: the parsers and canonicalizations on arbitrary bytes, the
outcome of every signature (result or exception type) and the milter's verdict on the Delta
Chat samples, on generated messages signed with every canonicalization (with and without l=,
one or several signatures) and then mutated, and on the DKIM cases of the tests; signatures
byte for byte.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path
from unittest import mock

import dkim
import pytest
from chatmail_services.milter import dkimcanon, dkimcheck, dkimhash, dkimpolicy, mime
from chatmail_services.milter.dkimsign import Signer, header_list
from chatmail_services.milter.dkimverify import KeyCache, KeyLookup, Verifier
from dkim import canonicalization
from harness import REPO, VENV_BIN
from harness.fixtures import session_dkim_key
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatmail_services import dkimkey
from chatmail_services.dnsquery import DnsTemporaryError

LOG = logging.getLogger("test.dkim.equal")
DOMAIN, OTHER = "chat.example", "other.example"
SELECTOR = "chatmail"


@functools.cache
def other_pem() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        dkimkey.generate_key(Path(tmp) / "k")
        return (Path(tmp) / "k").read_bytes()


def record(pem: bytes) -> bytes:
    return dkimkey.dkim_record_value(dkimkey.public_key_b64_of_pem(pem)).encode()


@functools.cache
def zone() -> dict[bytes, bytes | Exception]:
    """Key records by name: two good keys, a broken one, a failing look-up."""
    return {
        f"{SELECTOR}._domainkey.{DOMAIN}.".encode(): record(session_dkim_key()),
        f"{SELECTOR}._domainkey.{OTHER}.".encode(): record(other_pem()),
        f"broken._domainkey.{DOMAIN}.".encode(): b"v=DKIM1; k=rsa; p=AAAA",
        f"tlsrpt._domainkey.{DOMAIN}.".encode(): record(session_dkim_key()).replace(
            b"s=email", b"s=tlsrpt"
        ),
        f"down._domainkey.{DOMAIN}.".encode(): DnsTemporaryError("SERVFAIL"),
    }


def dnsfunc(name: bytes | str, timeout: float = 5) -> bytes | None:
    answer = zone().get(name if isinstance(name, bytes) else name.encode())
    if isinstance(answer, Exception):
        raise answer
    return answer


def outcome(call) -> tuple[str, object]:
    try:
        return ("result", call())
    except Exception as exc:  # the type is what is compared
        return ("raises", type(exc))


def stock_outcomes(message: bytes, count: int) -> list[tuple[str, object]]:
    """Stock dkimpy: the outcome of constructing, then of verify(idx) for each idx."""
    built = outcome(lambda: dkim.DKIM(message, logger=LOG))
    if built[0] == "raises":
        return [built]
    d = built[1]
    return [("result", None)] + [outcome(lambda i=i: d.verify(i, dnsfunc)) for i in range(count)]


def fast_outcomes(message: bytes, count: int) -> list[tuple[str, object]]:
    built = outcome(lambda: dkimcheck.SignedMessage(message, LOG))
    if built[0] == "raises":
        return [built]
    m = built[1]
    return [("result", None)] + [outcome(lambda i=i: m.verify(i, dnsfunc)) for i in range(count)]


def stock_verifier_verdict(message: bytes, headers: mime.Headers):
    """The milter's verdict as it was before issue 23: dkimpolicy over stock dkim.DKIM."""
    parsed: list = []

    def check(index: int) -> dkimpolicy.Check:
        if not parsed:
            try:
                parsed.append(dkim.DKIM(message, logger=LOG))
            except dkim.DKIMException:
                parsed.append(None)
        if parsed[0] is None:
            return dkimpolicy.Check.INVALID
        try:
            ok = parsed[0].verify(idx=index, dnsfunc=dnsfunc)
        except DnsTemporaryError:
            return dkimpolicy.Check.TEMPFAIL
        except dkim.DKIMException:
            return dkimpolicy.Check.INVALID
        return dkimpolicy.Check.VALID if ok else dkimpolicy.Check.INVALID

    return dkimpolicy.decide(headers, check, 5)


def fast_verifier() -> Verifier:
    def fetch(name: str) -> tuple[tuple[bytes, ...], int]:
        answer = dnsfunc(name)
        return ((answer,), 300) if answer is not None else ((), 0)

    return Verifier(KeyLookup(fetch, KeyCache(100, 3600), 4096), 5)


def assert_same(message: bytes) -> None:
    """Every signature's outcome and the milter's verdict equal stock dkimpy's."""
    count = message.lower().count(b"dkim-signature") + 1
    assert fast_outcomes(message, count) == stock_outcomes(message, count)
    headers = mime.parse_message(message).headers
    assert outcome(lambda: fast_verifier().verdict(message, headers)) == outcome(
        lambda: stock_verifier_verdict(message, headers)
    )


def stock_sign(message: bytes, selector=SELECTOR, domain=DOMAIN, pem=None, **kwargs) -> bytes:
    kwargs.setdefault("canonicalize", (b"relaxed", b"simple"))
    return dkim.sign(
        message, selector.encode(), domain.encode(), pem or session_dkim_key(), **kwargs
    )


# -- the parts, on arbitrary bytes --

TEXT = st.binary(max_size=200) | st.lists(
    st.sampled_from(
        [b"a", b"B", b" ", b"\t", b"\r", b"\n", b"\r\n", b"\r\n ", b":", b";", b"=", b"From "]
    ),
    max_size=40,
).map(b"".join)


@given(TEXT)
def test_split_message_is_rfc822_parse(data):
    assert outcome(lambda: dkimcanon.split_message(data)) == outcome(
        lambda: dkim.rfc822_parse(data)
    )


@given(TEXT)
def test_relaxed_canonicalizations_are_dkimpys(data):
    relaxed = canonicalization.Relaxed
    headers = [[b"Name ", data], [b"x", data + b"\r\n"], [b"A", b" " + data]]
    assert dkimcanon.relaxed_headers(headers) == relaxed.canonicalize_headers(headers)
    assert dkimcanon.relaxed_body(data) == relaxed.canonicalize_body(data)


B_VALUE = st.lists(
    st.sampled_from(
        [b"b", b"=", b" ", b"\t", b"\r\n", b"\n", b"\r", b";", b"A", b"h", b"+", b"/", b"-", b"x"]
    ),
    max_size=30,
).map(b"".join)


B_TAGGED = st.tuples(
    B_VALUE,
    st.sampled_from([b";", b" ", b"\t", b"\r\n ", b"x"]),
    st.sampled_from([b"b=", b"b =", b"b\r\n =", b"bh="]),
    B_VALUE,
    st.sampled_from([b"", b"\r\n", b"\n", b" \r\n", b"\r\nx"]),
).map(b"".join)


@given(B_TAGGED | B_VALUE | TEXT)
def test_strip_b_value_is_dkimpys_re_btag(value):
    assert dkimcanon.strip_b_value(value) == dkim.RE_BTAG.sub(b"\\1", value)


@given(
    st.lists(
        st.tuples(st.sampled_from([b"From", b"from", b"To", b"X", b"Subject"]), TEXT), max_size=8
    ),
    st.lists(st.sampled_from([b"from", b"to", b"x", b"subject", b"absent"]), max_size=12),
)
def test_header_selection_and_hash_are_dkimpys(headers, include):
    assert dkimhash.select_headers(headers, include) == dkim.select_headers(headers, include)
    policy = dkimcanon.policy(b"relaxed/simple")
    stock_policy = canonicalization.CanonicalizationPolicy.from_c_value(b"relaxed/simple")
    sig = (b"DKIM-Signature", b" v=1; b=AAAA\r\n BBB=;\r\n")
    ours, theirs = (
        dkim.HashThrough(dkim.hashlib.sha256(), True),
        dkim.HashThrough(dkim.hashlib.sha256(), True),
    )
    canonical = stock_policy.canonicalize_headers(headers)
    selected = dkimhash.hash_headers(ours, policy, canonical, include, sig)
    assert selected == dkim.hash_headers(theirs, stock_policy, canonical, include, sig, {})
    assert ours.digest() == theirs.digest()


def test_parsed_keys_are_kept_and_errors_raised_each_time():
    good = record(session_dkim_key())
    assert dkimcheck.parsed_key("a", good) == dkim.evaluate_pk("a", good)
    assert dkimcheck.parsed_key("b", good) is dkimcheck.parsed_key("c", good)  # parsed once
    for bad in (None, b"", b"v=DKIM1; k=rsa; p=AAAA", b"v=DKIM2; p=AAAA"):
        with pytest.raises(dkim.KeyFormatError):
            dkimcheck.parsed_key("x", bad)
        with pytest.raises(dkim.KeyFormatError):
            dkim.evaluate_pk("x", bad)


# -- verification: samples, named cases, generated and mutated messages --


def test_verification_of_the_samples_equals_dkimpys(samples):
    for sample in samples.values():
        for c in ((b"relaxed", b"simple"), (b"relaxed", b"relaxed"), (b"simple", b"simple")):
            signed = stock_sign(sample.data, canonicalize=c) + sample.data
            assert (
                fast_outcomes(signed, 2)
                == stock_outcomes(signed, 2)
                == [
                    ("result", None),
                    ("result", True),
                    ("result", False),
                ]
            )
            assert_same(signed)
            assert_same(signed.replace(b"\r\n\r\n", b"\r\n\r\nchanged\r\n", 1))
            assert_same(signed.replace(b"Subject:", b"Subject: x", 1))


def message(body: bytes = b"hello\r\n", sender: str = f"alice@{DOMAIN}") -> bytes:
    return (
        f"From: Alice <{sender}>\r\nTo: <bob@example.org>\r\nSubject: [...]\r\n"
        "Date: Sat, 21 Nov 2026 05:41:21 +0000\r\nMessage-ID: <m1@chat.example>\r\n"
        "Content-Type: text/plain\r\n\r\n"
    ).encode() + body


def signed_by(data: bytes, **kwargs) -> bytes:
    return stock_sign(data, **kwargs) + data


CASES = {
    "valid": lambda: signed_by(message()),
    "valid-relaxed-body": lambda: signed_by(
        message(b"a  b \t\r\n\r\n"), canonicalize=(b"relaxed", b"relaxed")
    ),
    "broken-body": lambda: signed_by(message()).replace(b"hello", b"hellO"),
    "appended-body": lambda: signed_by(message()) + b"more\r\n",
    "broken-header": lambda: signed_by(message()).replace(b"Subject: [...]", b"Subject: [!!!]"),
    "refolded-header": lambda: signed_by(message()).replace(
        b"Subject: [...]", b"Subject:\r\n  [...]"
    ),
    "added-from": lambda: signed_by(message()).replace(b"To:", b"From: <e@vil.example>\r\nTo:"),
    "wrong-domain": lambda: signed_by(message(), domain=OTHER, pem=other_pem()),
    "wrong-key": lambda: signed_by(message(), pem=other_pem()),
    "length": lambda: signed_by(message(), length=True) + b"appended\r\n",
    "length-within": lambda: signed_by(message(), length=True),
    "length-and-not": lambda: signed_by(signed_by(message(), length=True) + b"more\r\n"),
    "several": lambda: signed_by(signed_by(message(), domain=OTHER, pem=other_pem())),
    "several-first-broken": lambda: signed_by(signed_by(message()).replace(b"bh=", b"bh=AA")),
    "several-same-body-hash": lambda: signed_by(
        signed_by(message()), canonicalize=(b"simple", b"simple")
    ),
    "missing-key": lambda: signed_by(message(), selector="nokey"),
    "malformed-key": lambda: signed_by(message(), selector="broken"),
    "tlsrpt-key": lambda: signed_by(message(), selector="tlsrpt"),
    "dns-failure": lambda: signed_by(message(), selector="down"),
    "unsigned": lambda: message(),
    "garbage-signature": lambda: b"DKIM-Signature: v=1; a=rsa-sha256; b=\r\n" + message(),
    "bad-c": lambda: signed_by(message()).replace(b"c=relaxed/simple", b"c=fancy/simple"),
    "lf-only": lambda: signed_by(message()).replace(b"\r\n", b"\n"),
    "sha1": lambda: signed_by(message(), signature_algorithm=b"rsa-sha1"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_dkim_cases_give_dkimpys_outcomes(case):
    assert_same(CASES[case]())


def broken_b(data: bytes) -> bytes:
    """The top signature's b= value changed in one base64 character (still well-formed)."""
    at = re.search(rb"[;\s]b=", data).end() + 5
    return data[:at] + (b"B" if data[at : at + 1] == b"A" else b"A") + data[at + 1 :]


def test_several_signatures_hash_the_body_and_parse_the_key_once(monkeypatch):
    """The point of the fast path: the work per message is done once. Stock dkimpy hashed
    the body and parsed the key record again for every signature it checked."""
    data = broken_b(signed_by(broken_b(signed_by(signed_by(message())))))
    bodies, keys = [], []
    simple = canonicalization.Simple.canonicalize_body
    monkeypatch.setattr(
        canonicalization.Simple,
        "canonicalize_body",
        staticmethod(lambda body: bodies.append(1) or simple(body)),
    )
    evaluate = dkim.evaluate_pk
    monkeypatch.setattr(dkim, "evaluate_pk", lambda *args: keys.append(1) or evaluate(*args))
    dkimcheck._evaluated.cache_clear()
    verdict = fast_verifier().verdict(data, mime.parse_message(data).headers)
    assert verdict.accepted  # the third signature from the top is the valid one
    assert (len(bodies), len(keys)) == (1, 1)


HEADER_NAMES = st.sampled_from(
    [
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "X-A",
        "x-a",
        "Reply-To",
        "Autocrypt",
        "Received",
        "MIME-Version",
    ]
)
VALUE = st.lists(
    st.sampled_from(["a", "b", " ", "  ", "\t", "\r\n ", "\r\n\t", ";", "="]), max_size=8
).map("".join)
LINE = st.lists(st.sampled_from([b"a", b"b", b" ", b"  ", b"\t", b"-"]), max_size=8).map(b"".join)


@st.composite
def signed_messages(draw) -> bytes:
    """A message with 1-3 signatures of random canonicalization, header list and l=."""
    others = draw(st.lists(st.tuples(HEADER_NAMES, VALUE), max_size=6))
    fields = [("From", f" <alice@{DOMAIN}>"), *others]
    draw(st.randoms()).shuffle(fields)
    lines = draw(st.lists(LINE, max_size=6))
    body = b"\r\n".join(lines) + draw(st.sampled_from([b"", b"\r\n", b"\r\n\r\n"]))
    data = b"".join(f"{n}:{v}\r\n".encode() for n, v in fields) + b"\r\n" + body
    for _ in range(draw(st.integers(1, 3))):
        include = draw(
            st.lists(st.sampled_from(["from", "to", "subject", "x-a", "absent"]), max_size=5)
        )
        domain, pem = draw(st.sampled_from([(DOMAIN, session_dkim_key()), (OTHER, other_pem())]))
        data = (
            stock_sign(
                data,
                domain=domain,
                pem=pem,
                canonicalize=(
                    draw(st.sampled_from([b"simple", b"relaxed"])),
                    draw(st.sampled_from([b"simple", b"relaxed"])),
                ),
                include_headers=[b"from"] + [x.encode() for x in include],
                length=draw(st.booleans()),
            )
            + data
        )
    return data


MUTATIONS = st.lists(
    st.tuples(
        st.integers(0, 2000),
        st.integers(0, 3),
        st.sampled_from(
            [b"", b" ", b"\t", b"\r\n", b"\n", b"\r\n ", b"a", b"A", b":", b";", b"=", b"\r\n\r\n"]
        ),
    ),
    max_size=3,
)


def mutate(data: bytes, edits) -> bytes:
    for position, remove, insert in edits:
        at = position % (len(data) + 1)
        data = data[:at] + insert + data[at + remove :]
    return data


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(signed_messages(), MUTATIONS)
def test_generated_and_mutated_messages_verify_as_with_dkimpy(data, edits):
    count = data.count(b"DKIM-Signature:")
    assert fast_outcomes(data, count) == [("result", None)] + [("result", True)] * count
    assert_same(data)
    assert_same(mutate(data, edits))


# -- signing: byte for byte --


def stock_milter_signature(data: bytes) -> bytes:
    """The value the milter gave before issue 23: stock dkimpy with the milter's h= list."""
    d = dkim.DKIM(data, linesep=b"\n")
    names = [name.decode("ascii", "replace") for name, _ in d.headers]
    field = d.sign(
        SELECTOR.encode(),
        DOMAIN.encode(),
        session_dkim_key(),
        canonicalize=(b"relaxed", b"simple"),
        include_headers=[name.encode("ascii") for name in header_list(names)],
    )
    return field.partition(b":")[2].rstrip(b"\r\n")


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer(SELECTOR, DOMAIN, session_dkim_key())


def test_signatures_of_the_samples_are_dkimpys_byte_for_byte(signer, samples):
    with mock.patch.object(time, "time", lambda: 1764633600.0):
        for sample in samples.values():
            ours = signer.sign(sample.data)
            assert ours == stock_milter_signature(sample.data)
            signed = b"DKIM-Signature:" + ours.replace(b"\n", b"\r\n") + b"\r\n" + sample.data
            assert dkim.verify(signed, dnsfunc=dnsfunc)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            HEADER_NAMES | st.sampled_from(["Bcc", "List-Id", "Resent-To", "DKIM-Signature"]), VALUE
        ),
        max_size=8,
    ),
    st.lists(LINE, max_size=6),
    st.integers(0, 2**31),
)
def test_generated_signatures_are_dkimpys_byte_for_byte(signer, fields, lines, now):
    data = f"From: <alice@{DOMAIN}>\r\n".encode()
    data += b"".join(f"{n}:{v}\r\n".encode() for n, v in fields) + b"\r\n" + b"\r\n".join(lines)
    with mock.patch.object(time, "time", lambda: float(now)):
        assert outcome(lambda: signer.sign(data)) == outcome(lambda: stock_milter_signature(data))


def test_signer_refuses_a_key_dkimpy_cannot_use():
    with pytest.raises(dkim.KeyFormatError):
        Signer(SELECTOR, DOMAIN, b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")


# -- the same checks against Debian's python3-dkim (what the package runs with) --


def test_the_checks_hold_with_debians_dkimpy(tmp_path):
    """The package depends on python3-dkim (Debian 12: 1.1.4), the virtualenv has dkimpy
    1.1.8: this file's checks run once more with Debian's module in place of the venv's."""
    found = subprocess.run(
        ["/usr/bin/python3", "-c", "import dkim, os; print(os.path.dirname(dkim.__file__))"],
        capture_output=True,
        text=True,
        check=True,
    )
    (tmp_path / "dkim").symlink_to(found.stdout.strip())
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "HYPOTHESIS_PROFILE": "dev"}
    probe = [str(VENV_BIN / "python"), "-c", "import dkim; print(dkim.__file__)"]
    assert subprocess.run(probe, env=env, capture_output=True, text=True).stdout.startswith(
        str(tmp_path)
    )
    run = subprocess.run(
        [str(VENV_BIN / "pytest"), __file__, "-q", "-p", "no:cacheprovider", "-k", "not debians"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert " passed" in run.stdout and "skipped" not in run.stdout
