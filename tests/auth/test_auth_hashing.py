"""SHA512-CRYPT through libxcrypt, checked against Dovecot's own verifier."""

from __future__ import annotations

import subprocess

import pytest
from chatmail_services.authsocket.hashing import HashError, hash_password, verify_password
from hypothesis import given
from hypothesis import strategies as st


def test_hash_format():
    first, second = hash_password(b"correct horse"), hash_password(b"correct horse")
    assert first.startswith("{SHA512-CRYPT}$6$")
    assert len(first.split("$")[2]) == 16  # salt
    assert first != second  # random salt


@pytest.mark.parametrize("password", ["simplepassword", "q\"u'o\\t/e sp ace", "pässwörd-ü€"])
def test_dovecot_verifies_our_hashes(password):
    stored = hash_password(password.encode())
    good = subprocess.run(
        ["doveadm", "pw", "-t", stored, "-p", password], capture_output=True, text=True
    )
    assert good.returncode == 0, good.stderr
    assert "(verified)" in good.stdout
    bad = subprocess.run(["doveadm", "pw", "-t", stored, "-p", password + "x"], capture_output=True)
    assert bad.returncode != 0


def test_we_verify_dovecots_hashes():
    out = subprocess.run(
        ["doveadm", "pw", "-s", "SHA512-CRYPT", "-p", "from dovecot"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    stored = out.stdout.strip()
    assert verify_password(b"from dovecot", stored)
    assert not verify_password(b"from dovecoT", stored)


@given(st.binary(max_size=64).filter(lambda b: b"\0" not in b))
def test_verify_round_trip(password):
    stored = hash_password(password)
    assert verify_password(password, stored)
    assert not verify_password(password + b"!", stored)


def test_nul_and_bad_hashes_refused():
    with pytest.raises(HashError):
        hash_password(b"a\0b")
    assert not verify_password(b"x", "{PLAIN}x")
    assert not verify_password(b"x", "{SHA512-CRYPT}$1$abc$def")
    assert not verify_password(b"x", "{SHA512-CRYPT}$6$!!$garbage")
