"""dkimpy's two RSA steps done by OpenSSL (through `cryptography`): the one change we make to it.

dkimpy canonicalizes and hashes in C-backed hashlib, but does the RSA arithmetic of PKCS#1
v1.5 in Python: 6.5 ms of CPU to sign a message, 0.4 ms to verify one (docs/performance.md).
Its signer and verifier call the module-level names `dkim.RSASSA_PKCS1_v1_5_sign` and
`dkim.RSASSA_PKCS1_v1_5_verify`, so `install()` points those names at the functions below,
which take dkimpy's own arguments (a hash object, its key dictionaries) and give its own
results: PKCS#1 v1.5 signatures are deterministic, and tests check byte-identical signatures
and the same verdicts. Digests other than SHA-256 (rsa-sha1) stay with dkimpy's code.

The signature's length: dkimpy reads it as a number, so a signature with leading zero octets
stripped (as some signers write it, about 1 in 256) or added verifies; OpenSSL insists on
exactly the modulus's length. `rsa_verify` therefore first writes the number at that length
(`at_modulus_length`), and the verdicts are dkimpy's for every signature whose value is below
the modulus. A value at or above it, which no signer produces, is invalid (RFC 8017 5.2.2),
where dkimpy would reduce it modulo n.
"""

from __future__ import annotations

import functools
from typing import Any

import dkim
import dkim.crypto
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

PURE_SIGN = dkim.crypto.RSASSA_PKCS1_v1_5_sign
PURE_VERIFY = dkim.crypto.RSASSA_PKCS1_v1_5_verify
_SHA256 = utils.Prehashed(hashes.SHA256())


@functools.lru_cache(maxsize=4)
def _private_key(numbers: tuple[int, ...]) -> rsa.RSAPrivateKey:
    n, e, d, p, q, dp, dq, qinv = numbers
    return rsa.RSAPrivateNumbers(p, q, d, dp, dq, qinv, rsa.RSAPublicNumbers(e, n)).private_key()


@functools.lru_cache(maxsize=4096)
def _public_key(modulus: int, exponent: int) -> rsa.RSAPublicKey:
    return rsa.RSAPublicNumbers(exponent, modulus).public_key()


def rsa_sign(hash_: Any, private_key: dict[str, int]) -> bytes:
    """RSASSA-PKCS1-v1_5 signature of `hash_`'s digest (dkimpy's signing step)."""
    if hash_.name.lower() != "sha256":
        return PURE_SIGN(hash_, private_key)
    names = ("modulus", "publicExponent", "privateExponent", "prime1", "prime2")
    names += ("exponent1", "exponent2", "coefficient")
    key = _private_key(tuple(private_key[name] for name in names))
    return key.sign(hash_.digest(), padding.PKCS1v15(), _SHA256)


def at_modulus_length(signature: bytes, modulus: int) -> bytes | None:
    """The signature's number written in exactly the modulus's octets; None if the number is
    not below the modulus (then it is no signature representative, RFC 8017 5.2.2)."""
    value = int.from_bytes(signature, "big")
    if value >= modulus:
        return None
    return value.to_bytes((modulus.bit_length() + 7) // 8, "big")


def rsa_verify(hash_: Any, signature: bytes, public_key: dict[str, int]) -> bool:
    """Whether `signature` is `hash_`'s digest signed with `public_key` (dkimpy's step)."""
    normalized = at_modulus_length(bytes(signature), public_key["modulus"])
    if normalized is None:
        return False
    if hash_.name.lower() != "sha256":
        return PURE_VERIFY(hash_, normalized, public_key)
    try:
        key = _public_key(public_key["modulus"], public_key["publicExponent"])
        key.verify(normalized, hash_.digest(), padding.PKCS1v15(), _SHA256)
    except (InvalidSignature, ValueError):
        return False
    return True


def install() -> None:
    """Make dkimpy use the two functions above (idempotent)."""
    dkim.RSASSA_PKCS1_v1_5_sign = rsa_sign
    dkim.RSASSA_PKCS1_v1_5_verify = rsa_verify
