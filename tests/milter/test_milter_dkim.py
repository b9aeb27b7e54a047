"""DKIM signing and verification through dkimpy with a real key: the glue, the key cache,
the adapter's three roles through Milter.testctx, startup and dkim-keygen."""

from __future__ import annotations

import functools
import io
import logging
import os
import pwd
import subprocess
import time
from pathlib import Path

import dkim
import Milter
import pytest
from chatmail_services.milter import dkimcrypto, mime
from chatmail_services.milter.adapter import ChatmailMilter, Service
from chatmail_services.milter.cli import service_from_config
from chatmail_services.milter.dkimsign import Signer, header_list
from chatmail_services.milter.dkimverify import KeyCache, KeyLookup, Verifier, make_verifier
from chatmail_services.milter.ratelimit import RateLimiter
from harness import MAIL_USER, VENV_BIN
from harness.fixtures import session_dkim_key
from harness.messages import ALICE, BOB, DOMAIN
from harness.milterctx import MilterCtx

from chatmail_services import dkimkey
from chatmail_services.dnsquery import DnsTemporaryError

MILTER = str(VENV_BIN / "chatmail-milter")
KEY_NAME = f"chatmail._domainkey.{DOMAIN}."


def record(pem: bytes | None = None) -> bytes:
    """The TXT record value of the key (as chatmail-dns / dkim-keygen publish it)."""
    import base64

    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(pem or session_dkim_key(), password=None)
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return dkimkey.dkim_record_value(base64.b64encode(der).decode()).encode()


class Zone:
    """A TXT fetch for KeyLookup answering from a dict; counts the questions."""

    def __init__(self, records: dict[str, bytes | Exception], ttl: int = 300) -> None:
        self.records, self.ttl, self.asked = records, ttl, []

    def __call__(self, name: str) -> tuple[tuple[bytes, ...], int]:
        self.asked.append(name)
        answer = self.records.get(name)
        if isinstance(answer, Exception):
            raise answer
        return ((answer,), self.ttl) if answer is not None else ((), 0)


def verifier(zone: Zone, max_key_bits: int = 4096, cache_size: int = 100) -> Verifier:
    return Verifier(KeyLookup(zone, KeyCache(cache_size, 3600), max_key_bits), 5)


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer("chatmail", DOMAIN, session_dkim_key())


def message(sender: str = ALICE, extra: str = "", body: str = "hello\r\n") -> bytes:
    return (
        f"From: Alice <{sender}>\r\nTo: <bob@other.example>\r\nSubject: [...]\r\n"
        "Date: Sat, 21 Nov 2026 05:41:21 +0000\r\nMessage-ID: <m1@chat.example>\r\n"
        f"Autocrypt: addr={sender}; keydata=AAAA\r\n{extra}"
        "Content-Type: text/plain\r\n\r\n" + body
    ).encode()


def signed(signer: Signer, data: bytes) -> bytes:
    value = signer.sign(data)
    return b"DKIM-Signature:" + value.replace(b"\n", b"\r\n") + b"\r\n" + data


def check(v: Verifier, data: bytes):
    return v.verdict(data, mime.parse_message(data).headers)


# -- signing and verifying through the glue --


def test_sign_then_verify_round_trip(signer):
    zone = Zone({KEY_NAME: record()})
    verdict = check(verifier(zone), signed(signer, message()))
    assert verdict.accepted and verdict.reason == "valid aligned DKIM signature"
    assert zone.asked == [KEY_NAME]
    # dkimpy itself agrees (independent of our selection code)
    assert dkim.verify(signed(signer, message()), dnsfunc=lambda name, timeout=5: record())


def test_openssl_rsa_steps_give_dkimpys_own_results(signer, monkeypatch):
    assert dkim.RSASSA_PKCS1_v1_5_sign is dkimcrypto.rsa_sign  # the hooks are in place
    assert dkim.RSASSA_PKCS1_v1_5_verify is dkimcrypto.rsa_verify
    # the signature carries its time (t=): the same second for both, or they differ there
    monkeypatch.setattr(dkim.time, "time", lambda: 1764633600.0)
    ours = signer.sign(message())
    good, bad = signed(signer, message()), signed(signer, message()).replace(b"hello", b"hellO")
    lookup = lambda name, timeout=5: record()  # noqa: E731
    assert dkim.verify(good, dnsfunc=lookup) and not dkim.verify(bad, dnsfunc=lookup)
    monkeypatch.setattr(dkim, "RSASSA_PKCS1_v1_5_sign", dkimcrypto.PURE_SIGN)
    monkeypatch.setattr(dkim, "RSASSA_PKCS1_v1_5_verify", dkimcrypto.PURE_VERIFY)
    assert signer.sign(message()) == ours  # byte for byte
    assert dkim.verify(good, dnsfunc=lookup) and not dkim.verify(bad, dnsfunc=lookup)


def test_signature_tags_and_header_list(signer):
    tags = dkim.util.parse_tag_value(signer.sign(message()).replace(b"\n", b"\r\n"))
    assert tags[b"d"] == b"chat.example" and tags[b"s"] == b"chatmail"
    assert tags[b"c"] == b"relaxed/simple" and tags[b"a"] == b"rsa-sha256"
    assert b"l" not in tags
    h = [name.strip() for name in tags[b"h"].split(b":")]
    for name in (b"from", b"subject", b"autocrypt", b"content-type", b"message-id"):
        assert name in h
    assert h.count(b"from") == 2 and h.count(b"autocrypt") == 2  # over-signed
    assert b"reply-to" in h and b"list-unsubscribe" in h  # absent, still over-signed


def test_header_list_skips_what_must_not_be_signed():
    names = ["Received", "From", "Return-Path", "Bcc", "X-Custom", "List-Foo", "From"]
    hl = header_list(names)
    assert "received" not in hl and "bcc" not in hl and "return-path" not in hl
    assert hl[:4] == ["from", "x-custom", "list-foo", "from"]
    assert hl.count("from") == 3 and hl.count("list-foo") == 2
    assert {"autocrypt", "content-type"} <= set(hl)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda m: m.replace(b"hello\r\n", b"hello, changed\r\n"),
        lambda m: m + b"appended\r\n",
        lambda m: m.replace(b"Subject: [...]", b"Subject: other"),
        lambda m: m.replace(b"Subject: [...]\r\n", b"Subject: [...]\r\nSubject: added\r\n"),
        lambda m: m.replace(b"Subject: [...]\r\n", b"Subject: [...]\r\nReply-To: <e@vil>\r\n"),
        lambda m: m.replace(b"Subject: [...]\r\n", b"Subject: [...]\r\nAutocrypt: addr=x\r\n"),
    ],
    ids=["body", "appended", "subject", "second-subject", "reply-to-added", "autocrypt-added"],
)
def test_any_change_after_signing_is_554(signer, tamper):
    verdict = check(verifier(Zone({KEY_NAME: record()})), tamper(signed(signer, message())))
    assert (verdict.code, verdict.text) == ("554", "No valid DKIM signature found")


def test_relaxed_header_canonicalization_survives_refolding(signer):
    data = signed(signer, message()).replace(b"Subject: [...]", b"Subject:   [...]")
    assert check(verifier(Zone({KEY_NAME: record()})), data).accepted


def test_signature_of_another_domain_does_not_count(signer):
    other = Signer("chatmail", "other.example", session_dkim_key())
    data = signed(other, message())
    zone = Zone({"chatmail._domainkey.other.example.": record()})
    verdict = check(verifier(zone), data)
    assert verdict.text == "No valid DKIM signature found" and zone.asked == []


def test_missing_or_wrong_key_is_554(signer):
    data = signed(signer, message())
    assert check(verifier(Zone({})), data).text == "No valid DKIM signature found"
    other_pem = _other_key()
    assert check(verifier(Zone({KEY_NAME: record(other_pem)})), data).code == "554"


@functools.cache
def _other_key() -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        dkimkey.generate_key(Path(tmp) / "k")
        return (Path(tmp) / "k").read_bytes()


def test_key_larger_than_max_key_bits_is_refused(signer):
    data = signed(signer, message())
    verdict = check(verifier(Zone({KEY_NAME: record()}), max_key_bits=1024), data)
    assert verdict.text == "No valid DKIM signature found"
    assert check(verifier(Zone({KEY_NAME: record()}), max_key_bits=2048), data).accepted


def test_dns_failure_is_451_and_never_cached(signer):
    data = signed(signer, message())
    zone = Zone({KEY_NAME: DnsTemporaryError("DNS look-up of TXT failed: Timeout")})
    v = verifier(zone)
    verdict = check(v, data)
    assert (verdict.action, verdict.code, verdict.xcode) == ("tempfail", "451", "4.7.5")
    zone.records[KEY_NAME] = record()
    assert check(v, data).accepted
    assert zone.asked == [KEY_NAME, KEY_NAME]
    assert check(v, data).accepted and len(zone.asked) == 2  # now cached


def test_unsigned_message_is_554_no_signature():
    verdict = check(verifier(Zone({})), message())
    assert (verdict.code, verdict.xcode, verdict.text) == (
        "554",
        "5.7.1",
        "No DKIM signature found",
    )


# -- the key cache --


def test_cache_is_lru_bounded_and_expires():
    now = [0.0]
    cache = KeyCache(2, 100, clock=lambda: now[0])
    cache.put("a", b"A", 300)
    cache.put("b", b"B", 10)
    assert cache.get("a") == (True, b"A")  # a is now the most recently used
    cache.put("c", b"C", 300)
    assert cache.get("b") == (False, None) and len(cache) == 2
    now[0] = 99.0
    assert cache.get("a") == (True, b"A")
    now[0] = 100.0  # kept for min(TTL 300, max 100)
    assert cache.get("a") == (False, None)


def test_cache_of_size_zero_or_ttl_zero_keeps_nothing():
    zero = KeyCache(0, 3600)
    zero.put("a", b"A", 300)
    assert len(zero) == 0
    no_ttl = KeyCache(10, 3600)
    no_ttl.put("a", None, 0)  # NXDOMAIN answers come with TTL 0 from dnsquery
    assert len(no_ttl) == 0


# -- the adapter through pymilter's TestCtx --


class Ctx(MilterCtx):
    """TestCtx recording added headers (its own addheader needs a parsed message)."""

    def __init__(self) -> None:
        super().__init__()
        self.added: list[tuple[str, str, int]] = []

    def addheader(self, field, value, idx):
        self.added.append((field, value, idx))
        self._headerschanged = True


def make_service(**overrides) -> Service:
    values = {
        "limiter": RateLimiter(60, 10),
        "enforces_encryption": lambda rcpt: False,
        "max_message_size": 31457280,
        "spool_threshold": 1 << 20,
        "mail_domain": DOMAIN,
    }
    values.update(overrides)
    return Service(**values)


def run_session(
    service, data: bytes, *, sender: str, rcpt: str, macros: dict[str, str], client="1.2.3.4"
):
    """One message as Postfix sends it with P_HDR_LEADSPC: values keep their leading space,
    folds are LF; `client` is the address CONNECT reports."""
    Milter.factory = functools.partial(ChatmailMilter, service)
    ctx = Ctx()
    for name, value in {"i": "4XyZ123", **macros}.items():
        ctx._setsymval(name, value)
    assert ctx._connect(ip=client) == Milter.CONTINUE
    assert ctx.getpriv()._protocol & Milter.P_HDR_LEADSPC
    rc = ctx._envfrom(f"<{sender}>")
    if rc != Milter.CONTINUE:
        return rc, ctx
    ctx._envrcpt(f"<{rcpt}>")
    head, _, body = data.partition(b"\r\n\r\n")
    for field in head.replace(b"\r\n ", b"\n ").replace(b"\r\n\t", b"\n\t").split(b"\r\n"):
        name, _, value = field.partition(b":")
        ctx._header(name.decode(), value.decode())
    ctx._eoh()
    ctx._feed_body(io.BytesIO(body))
    return ctx._eom(), ctx


def with_added(ctx: Ctx, data: bytes) -> bytes:
    """The message with the added header on top, as Postfix writes it."""
    [(field, value, idx)] = ctx.added
    assert (field, idx) == ("DKIM-Signature", 0)
    return f"{field}:{value}".replace("\n", "\r\n").encode() + b"\r\n" + data


@pytest.fixture
def secure_join(build) -> bytes:
    return build.secure_join_message(sender=ALICE, to="someone@other.example")


def test_submission_is_signed_and_the_signature_verifies(signer, secure_join):
    service = make_service(signer=signer)
    rc, ctx = run_session(
        service, secure_join, sender=ALICE, rcpt="x@other.example", macros={"{auth_authen}": ALICE}
    )
    assert rc == Milter.ACCEPT
    out = with_added(ctx, secure_join)
    assert check(verifier(Zone({KEY_NAME: record()})), out).accepted


def test_refused_submission_is_not_signed(signer, build):
    service = make_service(signer=signer)
    rc, ctx = run_session(
        service,
        build.plain_message(ALICE, "x@other.example"),
        sender=ALICE,
        rcpt="x@other.example",
        macros={"{auth_authen}": ALICE},
    )
    assert rc == Milter.REJECT and ctx.added == []


def test_incoming_unsigned_is_554_before_the_encryption_check(signer, build, caplog):
    service = make_service(signer=signer, verifier=verifier(Zone({})))
    plain = build.plain_message("x@other.example", BOB)
    with caplog.at_level(logging.INFO, logger="chatmail.milter"):
        rc, ctx = run_session(service, plain, sender="x@other.example", rcpt=BOB, macros={})
    assert rc == Milter.REJECT
    assert ctx._reply == ("554", "5.7.1", "No DKIM signature found")
    assert "4XyZ123: reject 554 5.7.1: no DKIM signature" in caplog.text
    assert "@" not in caplog.text and ctx.added == []


def test_incoming_signed_by_its_domain_goes_on_to_the_encryption_policy(signer, build):
    other = Signer("chatmail", "other.example", session_dkim_key())
    zone = Zone({"chatmail._domainkey.other.example.": record()})
    plain = build.plain_message("x@other.example", BOB)
    data = signed(other, plain)
    enforcing = make_service(verifier=verifier(zone), enforces_encryption=lambda r: True)
    rc, ctx = run_session(enforcing, data, sender="x@other.example", rcpt=BOB, macros={})
    assert rc == Milter.REJECT and ctx._reply[0] == "523"
    tampered = data.replace(b"\r\nhi\r\n", b"\r\nho\r\n")
    rc, ctx = run_session(enforcing, tampered, sender="x@other.example", rcpt=BOB, macros={})
    assert ctx._reply == ("554", "5.7.1", "No valid DKIM signature found")
    open_box = make_service(verifier=verifier(zone))
    rc, ctx = run_session(open_box, data, sender="x@other.example", rcpt=BOB, macros={})
    assert rc == Milter.ACCEPT and ctx.added == []  # incoming mail is never signed


def test_incoming_dns_failure_is_451(build):
    other = Signer("chatmail", "other.example", session_dkim_key())
    zone = Zone({"chatmail._domainkey.other.example.": DnsTemporaryError("timeout")})
    service = make_service(verifier=verifier(zone))
    data = signed(other, build.plain_message("x@other.example", BOB))
    rc, ctx = run_session(service, data, sender="x@other.example", rcpt=BOB, macros={})
    assert rc == Milter.TEMPFAIL
    assert ctx._reply == ("451", "4.7.5", "DKIM key lookup failed, please try again later")


def bounce() -> bytes:
    return (
        b"From: MAILER-DAEMON@chat.example (Mail Delivery System)\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\nTo: alice1234@chat.example\r\n"
        b"Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status;\r\n boundary="b1"\r\n'
        b"\r\n--b1\r\nContent-Type: text/plain\r\n\r\nsorry\r\n--b1--\r\n"
    )


def test_postfix_generated_mail_is_only_signed(signer):
    service = make_service(
        signer=signer, verifier=verifier(Zone({})), enforces_encryption=lambda r: True
    )
    internal = {"{daemon_name}": "chatmail-internal"}
    rc, ctx = run_session(service, bounce(), sender="", rcpt=ALICE, macros=internal)
    assert rc == Milter.ACCEPT
    assert check(verifier(Zone({KEY_NAME: record()})), with_added(ctx, bounce())).accepted
    # the same from an SMTP client (any other daemon name) is incoming mail: needs DKIM
    rc, ctx = run_session(service, bounce(), sender="", rcpt=ALICE, macros={})
    assert ctx._reply[0] == "554"
    # and the internal daemon name with a sender is not a bounce
    rc, ctx = run_session(service, bounce(), sender=ALICE, rcpt=ALICE, macros=internal)
    assert ctx._reply[0] == "554"


def test_internal_mail_of_another_domain_is_not_signed(signer):
    service = make_service(signer=signer)
    data = bounce().replace(b"MAILER-DAEMON@chat.example", b"MAILER-DAEMON@other.example")
    internal = {"{daemon_name}": "chatmail-internal"}
    rc, ctx = run_session(service, data, sender="", rcpt=ALICE, macros=internal)
    assert rc == Milter.ACCEPT and ctx.added == []


def test_signing_failure_is_451(build, secure_join):
    class Broken:
        def sign(self, data):
            raise dkim.DKIMException("boom")

    service = make_service(signer=Broken())
    rc, ctx = run_session(
        service, secure_join, sender=ALICE, rcpt="x@other.example", macros={"{auth_authen}": ALICE}
    )
    assert rc == Milter.TEMPFAIL and ctx._reply[:2] == ("451", "4.3.0") and ctx.added == []


# -- real DNS (nsd on loopback) --


@pytest.mark.stack  # starts nsd, like the other tests of a real name server
def test_key_lookup_through_a_real_nameserver(signer, tmp_path, make_config):
    from harness.nameserver import NameServer

    zone = f'{KEY_NAME} TXT "{record().decode()[:200]}" "{record().decode()[200:]}"\n'
    with NameServer(tmp_path, "127.53.9.1", {DOMAIN: zone}) as ns:
        config = make_config(dkim={"resolver": f"{ns.address}:{ns.port}", "dns_timeout": 2})
        v = make_verifier(config.dkim)
        assert check(v, signed(signer, message())).accepted
    # the server is gone: cached key still verifies; an uncached one is a temporary failure
    assert check(v, signed(signer, message())).accepted
    other = Signer("other", DOMAIN, session_dkim_key())
    verdict = check(v, signed(other, message()))
    assert verdict.code == "451", verdict


# -- startup and dkim-keygen --


def test_serve_without_key_refuses_to_start_with_78(make_config, tmp_path):
    config = make_config(dkim={"key_file": tmp_path / "missing.private"})
    result = subprocess.run(
        [MILTER, "--config", config.path, "serve"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 78
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"chatmail-milter: [dkim] sign = yes, but {tmp_path}/missing.private: no DKIM key"
        " (create one with chatmail-milter dkim-keygen)"
    ]


def test_serve_with_garbage_key_refuses_to_start(make_config, tmp_path):
    bad = tmp_path / "bad.private"
    bad.write_text("not a key\n")
    config = make_config(dkim={"key_file": bad})
    result = subprocess.run(
        [MILTER, "--config", config.path, "serve"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 78 and "not a PEM private key" in result.stderr


def keygen(config) -> subprocess.CompletedProcess[str]:
    """`chatmail-milter dkim-keygen` for `config`, the key owned by the mail user."""
    return subprocess.run(
        [MILTER, "--config", config.path, "dkim-keygen", "--owner", MAIL_USER],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_dkim_keygen_creates_the_key_and_prints_the_record(make_config, tmp_path):
    key = tmp_path / "dkim" / "new.private"
    config = make_config(dkim={"key_file": key, "selector": "sel2026"})
    result = keygen(config)
    assert result.returncode == 0, result.stderr
    stat = key.stat()
    assert stat.st_mode & 0o777 == 0o600
    assert stat.st_uid == pwd.getpwnam(MAIL_USER).pw_uid
    line = result.stdout.strip()
    assert line.startswith("sel2026._domainkey.chat.example. TXT ")
    strings = line.split(" TXT ", 1)[1].strip()
    parts = [p.strip('"') for p in strings.split('" "')]
    assert all(len(p) <= 255 for p in parts) and len(parts) >= 2
    assert "".join(parts) == record(key.read_bytes()).decode()
    again = subprocess.run(
        [MILTER, "--config", config.path, "dkim-keygen"], capture_output=True, text=True
    )
    assert again.returncode == 1 and "exists already" in again.stderr
    assert os.path.getsize(key) == stat.st_size  # the old key is kept


def test_serve_with_signing_off_needs_no_key(make_config, tmp_path):
    config = make_config(dkim={"key_file": tmp_path / "missing.private", "sign": "no"})
    proc = subprocess.Popen(
        [MILTER, "--config", config.path, "serve"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        socket = Path(config.milter.socket)
        for _ in range(200):
            if socket.exists() or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert socket.exists(), proc.stderr.read() if proc.poll() is not None else "no socket"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_address_literals_are_logged_without_their_ip(build, caplog):
    sender = "someone@[192.0.2.1]"
    service = make_service(verifier=verifier(Zone({})))
    with caplog.at_level(logging.DEBUG, logger="chatmail.milter"):
        rc, _ctx = run_session(
            service,
            build.plain_message(sender, BOB),
            sender=sender,
            rcpt=BOB,
            macros={},
            client="192.0.2.1",
        )
    assert rc == Milter.ACCEPT  # the client's own literal; BOB does not enforce encryption
    assert "192.0.2.1" not in caplog.text
    assert "someone@[address literal]" in caplog.text  # the address itself only at debug


@pytest.mark.parametrize(
    ("sender", "client", "accepted"),
    [
        ("someone@[192.0.2.1]", "192.0.2.1", True),
        ("someone@[192.0.2.1]", "192.0.2.9", False),
        ("someone@[IPv6:2001:db8::1]", "2001:db8::1", True),
        ("someone@[IPv6:2001:db8::1]", "2001:db8::2", False),
        ("someone@[IPv6:2001:db8::1]", "192.0.2.1", False),
    ],
)
def test_incoming_from_literal_must_be_the_connecting_client(
    build, caplog, sender, client, accepted
):
    """A signed message cannot help either: the literal stands for the sending server."""
    service = make_service(verifier=verifier(Zone({})))
    with caplog.at_level(logging.DEBUG, logger="chatmail.milter"):
        rc, ctx = run_session(
            service,
            build.plain_message(sender, BOB),
            sender=sender,
            rcpt=BOB,
            macros={},
            client=client,
        )
    if accepted:
        assert rc == Milter.ACCEPT
    else:
        assert rc == Milter.REJECT
        assert ctx._reply == (
            "554",
            "5.7.1",
            "From address literal is not the sending server's address",
        )
    assert client not in caplog.text and client.upper() not in caplog.text


def test_outgoing_is_signed_and_the_signature_is_logged_at_debug(signer, secure_join, caplog):
    """The relay's own signature, as the receiving relay verifies it (delivery strips it)."""
    service = make_service(signer=signer)
    with caplog.at_level(logging.DEBUG, logger="chatmail.milter"):
        rc, ctx = run_session(
            service,
            secure_join,
            sender=ALICE,
            rcpt="someone@other.example",
            macros={"{auth_authen}": ALICE},
        )
    assert rc == Milter.ACCEPT
    [(_, value, _)] = ctx.added
    [line] = [r.getMessage() for r in caplog.records if ": signed: " in r.getMessage()]
    assert line == "4XyZ123: signed: DKIM-Signature:" + value.replace("\n", "")
    with caplog.at_level(logging.INFO, logger="chatmail.milter"):
        caplog.clear()
        run_session(
            service,
            secure_join,
            sender=ALICE,
            rcpt="someone@other.example",
            macros={"{auth_authen}": ALICE},
        )
    assert "DKIM-Signature" not in caplog.text


# -- a relay without a domain name (mail_domain an IPv4 address) --


def test_a_relay_without_a_domain_name_submits_unsigned(make_config, tmp_path, build):
    # DKIM has no signing domain for an address literal: no key needed, nothing signed.
    config = make_config(
        chatmail={"mail_domain": "192.0.2.1"}, dkim={"key_file": tmp_path / "absent.private"}
    )
    service = service_from_config(config)
    assert service.signer is None and service.verifier is not None
    sender = "alice1234@[192.0.2.1]"
    message = build.secure_join_message(sender=sender, to="someone@other.example")
    rc, ctx = run_session(
        service, message, sender=sender, rcpt="x@other.example", macros={"{auth_authen}": sender}
    )
    assert rc == Milter.ACCEPT and ctx.added == []
    rc, _ctx = run_session(
        service,
        build.plain_message(sender, "x@other.example"),
        sender=sender,
        rcpt="x@other.example",
        macros={"{auth_authen}": sender},
    )
    assert rc == Milter.REJECT  # the encryption policy is the same


def test_dkim_keygen_of_a_relay_without_a_domain_name_has_no_record(make_config, tmp_path):
    key = tmp_path / "dkim" / "new.private"
    config = make_config(chatmail={"mail_domain": "192.0.2.1"}, dkim={"key_file": key})
    result = keygen(config)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and key.exists()
    assert "a relay without a domain name signs nothing" in result.stderr
