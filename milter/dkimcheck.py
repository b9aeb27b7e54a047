"""One message's DKIM signatures, verified step for step as dkimpy's `DKIM.verify` does.

dkimpy stays the implementation of record: its tag-list parser, signature field checks, key
record evaluation, canonicalization policy, header selection and hashing, and its RSA step (as
`milter/dkimcrypto.py` installs it) decide, called in the order `DKIM.verify`,
`verify_headerprep`, `verify_sig` and `verify_sig_process` call them (dkimpy 1.1.4 and 1.1.8),
raising what they raise. What changes is the work around them, done once instead of per
signature or per message: the message is split by `dkimcanon.split_message` (dkimpy's parser on
the header section only), the canonicalized header fields and the body hashes are kept per
canonicalization and `l=`, relaxed canonicalization uses `dkimcanon`'s equal functions, and
parsed key records are kept by their text (`parsed_key`). The verdicts are dkimpy's: tests
compare them with stock dkimpy on samples, on generated and mutated messages and on the DKIM
cases of the test suite. No I/O apart from `dnsfunc`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import logging
import re
from collections.abc import Callable
from typing import Any

import dkim
from dkim import canonicalization, crypto, util

from . import dkimcanon, dkimhash

KEY_CACHE_SIZE = 1024  # parsed key records kept, by their text (a few KB each)
MIN_KEY_BITS = 1024  # dkimpy's default `minkey`
DNS_TIMEOUT = 5  # dkimpy's default `timeout`, passed on to `dnsfunc`

DnsFunc = Callable[..., Any]  # dkimpy's `dnsfunc(name, timeout=...)`: the TXT record or None
_WSP = re.compile(rb"\s+")
_H_SEPARATOR = re.compile(rb"\s*:\s*")


@functools.lru_cache(maxsize=KEY_CACHE_SIZE)
def _evaluated(record: bytes | str) -> tuple[Any, int, bytes, bool]:
    return dkim.evaluate_pk(b"", record)


def parsed_key(name: bytes | str, record: bytes | str | None) -> tuple[Any, int, bytes, bool]:
    """dkimpy's `evaluate_pk(name, record)`: (key, bits, k= type, tlsrpt service), kept by the
    record's text; errors (`KeyFormatError`, ...) are raised each time, never kept."""
    if not record or not isinstance(record, bytes | str):
        return dkim.evaluate_pk(name, record)  # no record: raises (missing public key)
    return _evaluated(record)


class SignedMessage:
    """A message to verify, parsed once; `verify(idx, dnsfunc)` is `dkim.DKIM(message)
    .verify(idx, dnsfunc)`. Raises `dkim.MessageFormatError` where `dkim.DKIM(message)` does."""

    def __init__(self, message: bytes, logger: logging.Logger | logging.LoggerAdapter) -> None:
        self.headers, self.body = dkimcanon.split_message(message)
        self.logger = logger
        self.signatures = [(x, y) for x, y in self.headers if x.lower() == b"dkim-signature"]
        self._canonical: dict[bytes, list] = {}
        self._body_hashes: dict[tuple[bytes, bytes, bytes | None], bytes] = {}

    def verify(self, idx: int, dnsfunc: DnsFunc) -> bool:
        """Whether the `idx`-th DKIM-Signature (top first) verifies (dkimpy's `verify`)."""
        if len(self.signatures) <= idx:
            return False
        sig_header = self.signatures[idx]
        try:
            sig = util.parse_tag_value(sig_header[1])
        except util.InvalidTagValueList as e:
            raise dkim.MessageFormatError(e) from None
        dkim.validate_signature_fields(sig)
        include_headers = [x.lower() for x in _H_SEPARATOR.split(sig[b"h"])]
        name = sig[b"s"] + b"._domainkey." + sig[b"d"] + b"."
        try:
            pk, keysize, ktag, seqtlsrpt = parsed_key(name, dnsfunc(name, timeout=DNS_TIMEOUT))
        except (dkim.KeyFormatError, binascii.Error, dkim.DnsTimeoutError) as e:
            self.logger.debug("%s", e)
            return False
        return self._verify_sig(sig, include_headers, sig_header, pk, keysize, ktag, seqtlsrpt)

    def _verify_sig(self, sig, include_headers, sig_header, pk, keysize, ktag, seqtlsrpt) -> bool:
        """dkimpy's `verify_sig_process` (not a TLS report: `tlsrpt` False)."""
        if seqtlsrpt:
            raise dkim.ValidationError("Message is not tlsrpt and Service Type is tlsrpt")
        try:
            policy = dkimcanon.policy(sig.get(b"c", b"simple/simple"))
        except canonicalization.InvalidCanonicalizationPolicyError as e:
            raise dkim.MessageFormatError(f"invalid c= value: {e.args[0]}") from None
        hasher = dkim.HASH_ALGORITHMS[sig[b"a"]]
        if b"bh" in sig:
            bodyhash = self._body_hash(policy, sig[b"a"], sig.get(b"l"))
            try:
                bh = base64.b64decode(_WSP.sub(b"", sig[b"bh"]))
            except TypeError as e:
                raise dkim.MessageFormatError(str(e)) from None
            if bodyhash != bh:
                raise dkim.ValidationError("body hash mismatch")
        if b"from" in include_headers:
            include_headers.append(b"from")  # dkimpy's answer to a second From field
        h = dkim.HashThrough(hasher(), False)
        dkimhash.hash_headers(
            h, policy, self._canonical_headers(policy), include_headers, sig_header
        )
        signature = base64.b64decode(_WSP.sub(b"", sig[b"b"]))
        if ktag == b"rsa":
            try:
                res = dkim.RSASSA_PKCS1_v1_5_verify(h, signature, pk)
                if res and keysize < MIN_KEY_BITS:
                    raise dkim.KeyFormatError(f"public key too small: {keysize}")
                return res
            except (TypeError, crypto.DigestTooLargeError) as e:
                raise dkim.KeyFormatError(f"digest too large for modulus: {e}") from None
        if ktag == b"ed25519":  # only with PyNaCl installed (else evaluate_pk refuses the key)
            import nacl.exceptions

            try:
                pk.verify(h.digest(), signature)
            except nacl.exceptions.BadSignatureError:
                return False
            return True
        raise dkim.UnknownKeyTypeError(ktag)

    def _canonical_headers(self, policy: canonicalization.CanonicalizationPolicy) -> list:
        name = policy.header_algorithm.name
        if name not in self._canonical:
            self._canonical[name] = policy.canonicalize_headers(self.headers)
        return self._canonical[name]

    def _body_hash(self, policy, algorithm: bytes, length: bytes | None) -> bytes:
        key = (policy.body_algorithm.name, algorithm, length)
        if key not in self._body_hashes:
            body = policy.canonicalize_body(self.body)
            if length is not None:
                body = body[: int(length)]
            self._body_hashes[key] = dkim.HASH_ALGORITHMS[algorithm](body).digest()
        return self._body_hashes[key]
