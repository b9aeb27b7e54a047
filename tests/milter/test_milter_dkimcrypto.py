"""milter/dkimcrypto.py against dkimpy's own RSA code (PURE_VERIFY), the independent oracle.

The signature's length: RFC 8017 wants exactly the modulus's length, dkimpy reads it as a
number, whatever its length. A signer that strips leading zero octets (1 signature in 256
starts with one) or adds some must verify here as it does with dkimpy.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re

import dkim
import dkim.crypto
import pytest
from chatmail_services.milter import dkimcrypto, mime
from chatmail_services.milter.dkimsign import Signer
from chatmail_services.milter.dkimverify import KeyCache, KeyLookup, Verifier
from harness.fixtures import session_dkim_key
from harness.messages import ALICE, DOMAIN
from hypothesis import given
from hypothesis import strategies as st

from chatmail_services import dkimkey


@functools.cache
def keys() -> tuple[dict[str, int], dict[str, int]]:
    """(private, public) key dictionaries as dkimpy parses them."""
    pem = session_dkim_key()
    public_der = base64.b64decode(dkimkey.public_key_b64_of_pem(pem))
    return dkim.crypto.parse_pem_private_key(pem), dkim.crypto.parse_public_key(public_der)


def modulus_length() -> int:
    return (keys()[1]["modulus"].bit_length() + 7) // 8


@functools.cache
def zero_led() -> tuple[bytes, bytes]:
    """(data, signature) of the first counter whose signature begins with a zero octet."""
    private, _ = keys()
    for counter in range(20000):
        data = b"message %d" % counter
        signature = dkimcrypto.rsa_sign(hashlib.sha256(data), private)
        if signature[0] == 0:
            return data, signature
    raise AssertionError("no signature with a leading zero in 20000 (p < 1e-30)")


def both(data: bytes, signature: bytes, name: str = "sha256") -> tuple[bool, bool]:
    """(ours, dkimpy's) verdict on a signature of `data`."""
    public = keys()[1]
    ours = dkimcrypto.rsa_verify(hashlib.new(name, data), signature, public)
    pure = dkimcrypto.PURE_VERIFY(hashlib.new(name, data), signature, public)
    return ours, pure


@pytest.mark.parametrize("name", ["sha256", "sha1"])
def test_leading_zero_octets_stripped_or_added_verify_as_with_dkimpy(name):
    data, signature = zero_led()
    if name == "sha1":  # rsa-sha1 stays with dkimpy's code: the length rule is the same
        signature = dkimcrypto.PURE_SIGN(hashlib.sha1(data), keys()[0])
    stripped = signature.lstrip(b"\0")
    variants = [signature, b"\0" + signature, b"\0\0\0" + signature]
    if name == "sha256":
        assert len(stripped) < modulus_length()
        variants.append(stripped)
    for variant in variants:
        assert both(data, variant, name) == (True, True), len(variant)
    assert both(data + b"x", stripped, name) == (False, False)


def test_values_at_or_above_the_modulus_are_invalid_where_dkimpy_reduces_them():
    """RFC 8017 5.2.2: a signature representative must be below n; no signer makes one
    above it, dkimpy computes modulo n and takes s + n for s. We refuse it."""
    data, signature = zero_led()
    modulus = keys()[1]["modulus"]
    above = (int.from_bytes(signature, "big") + modulus).to_bytes(modulus_length() + 1, "big")
    assert both(data, above) == (False, True)
    assert both(data, modulus.to_bytes(modulus_length(), "big")) == (False, False)


@st.composite
def signature_variants(draw) -> tuple[bytes, bytes]:
    """A data/signature pair: the real one, padded, stripped, altered, truncated or random."""
    data, signature = zero_led()
    kind = draw(st.sampled_from(["pad", "strip", "flip", "cut", "random", "other data"]))
    if kind == "pad":
        signature = b"\0" * draw(st.integers(0, 8)) + signature.lstrip(b"\0")
    elif kind == "strip":
        signature = signature.lstrip(b"\0")
    elif kind == "flip":
        index = draw(st.integers(0, len(signature) - 1))
        bit = 1 << draw(st.integers(0, 7))
        signature = signature[:index] + bytes([signature[index] ^ bit]) + signature[index + 1 :]
    elif kind == "cut":
        signature = signature[: draw(st.integers(0, len(signature)))]
    elif kind == "random":
        signature = draw(st.binary(max_size=modulus_length() + 4))
    else:
        data = draw(st.binary(max_size=40))
    return data, signature


@given(signature_variants())
def test_same_verdict_as_dkimpy_for_every_value_below_the_modulus(case):
    data, signature = case
    ours, pure = both(data, signature)
    if int.from_bytes(signature, "big") < keys()[1]["modulus"]:
        assert ours == pure
    else:
        assert ours is False


def test_a_whole_message_whose_b_lost_its_leading_zero_verifies(monkeypatch):
    """Through dkim.verify with the hooks installed: a message whose b= decodes to one octet
    less than the modulus (as a signer stripping leading zeros writes it) verifies."""
    signer = Signer("chatmail", DOMAIN, session_dkim_key())
    monkeypatch.setattr(dkim.time, "time", lambda: 1764633600.0)
    record = dkimkey.dkim_record_value(dkimkey.public_key_b64_of_pem(session_dkim_key()))
    for counter in range(20000):
        data = f"From: <{ALICE}>\r\nSubject: {counter}\r\n\r\nhello\r\n".encode()
        value = signer.sign(data).replace(b"\n", b"\r\n")
        b_value = re.search(rb"b=([A-Za-z0-9+/=\s]+)$", value).group(1)
        raw = base64.b64decode(re.sub(rb"\s+", b"", b_value))
        if raw[0] == 0:
            break
    else:
        raise AssertionError("no signature with a leading zero")
    short = value.replace(b_value, base64.b64encode(raw.lstrip(b"\0")))
    message = b"DKIM-Signature:" + short + b"\r\n" + data
    lookup = lambda name, timeout=5: record.encode()  # noqa: E731
    assert dkim.RSASSA_PKCS1_v1_5_verify is dkimcrypto.rsa_verify
    assert dkim.verify(message, dnsfunc=lookup)
    # the milter's own verification path accepts it too
    fetch = lambda name: ((record.encode(),), 300)  # noqa: E731
    verifier = Verifier(KeyLookup(fetch, KeyCache(10, 300), 4096), 5)
    verdict = verifier.verdict(message, mime.parse_message(message).headers)
    assert verdict.accepted, verdict
    monkeypatch.setattr(dkim, "RSASSA_PKCS1_v1_5_verify", dkimcrypto.PURE_VERIFY)
    assert dkim.verify(message, dnsfunc=lookup)  # dkimpy agrees
