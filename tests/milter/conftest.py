"""Milter test material: real GnuPG messages, the Delta Chat samples, message builders.

The builders and packet tools live in the harness (harness.messages, harness.pgppackets), which
the benchmarks share; the `build` fixture hands them to the tests in one object.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gnupg
import pytest
from harness import pgppackets
from harness.messages import (
    ALICE,
    BOB,
    Sample,
    encrypted_message,
    load_samples,
    plain_message,
    secure_join_message,
)


@pytest.fixture(scope="session")
def samples() -> dict[str, Sample]:
    """The Delta Chat samples by descriptive name, e.g. samples["chat-text-alice-to-bob"]."""
    return load_samples()


class GnuPG:
    """A temporary keyring with keys for ALICE and BOB (ed25519 / cv25519)."""

    def __init__(self, home: Path) -> None:
        home.chmod(0o700)
        self.gpg = gnupg.GPG(gnupghome=str(home))
        for addr in (ALICE, BOB):
            spec = self.gpg.gen_key_input(
                key_type="EDDSA",
                key_curve="ed25519",
                subkey_type="ECDH",
                subkey_curve="cv25519",
                subkey_usage="encrypt",
                name_email=addr,
                no_protection=True,
                expire_date=0,
            )
            key = self.gpg.gen_key(spec)
            assert key.fingerprint, key.stderr

    def encrypt(self, text: str | bytes, recipients=(ALICE, BOB), symmetric=None) -> str:
        """GnuPG's armored output (legacy PKESK headers, CRC line)."""
        if symmetric:
            result = self.gpg.encrypt(text, None, symmetric=True, passphrase=symmetric, armor=True)
        else:
            result = self.gpg.encrypt(text, list(recipients), always_trust=True, armor=True)
        assert result.ok, result.stderr
        return str(result)

    def decrypt_payload(self, payload: bytes, passphrase: str | None = None) -> bytes:
        """Decrypt a binary OpenPGP message: proof that a rewritten stream is real."""
        result = self.gpg.decrypt(payload, passphrase=passphrase)
        assert result.ok, result.stderr
        return result.data


@pytest.fixture(scope="session")
def gpg(tmp_path_factory) -> GnuPG:
    return GnuPG(tmp_path_factory.mktemp("gnupg"))


@dataclass
class Builders:
    """Message builders and packet tools, handed to tests as one fixture."""

    encrypted_message: Callable[..., bytes] = encrypted_message
    secure_join_message: Callable[..., bytes] = secure_join_message
    plain_message: Callable[..., bytes] = plain_message
    armor: Callable[..., str] = pgppackets.armor
    dearmor_gpg: Callable[[str], bytes] = pgppackets.dearmor_gpg
    parse_packets: Callable[[bytes], list[pgppackets.Packet]] = pgppackets.parse_packets
    serialize: Callable[[list[pgppackets.Packet], str], bytes] = pgppackets.serialize
    encode_new: Callable[..., bytes] = pgppackets.encode_new
    encode_legacy: Callable[..., bytes] = pgppackets.encode_legacy
    encode_partial: Callable[..., bytes] = pgppackets.encode_partial
    crc24: Callable[[bytes], int] = pgppackets.crc24
    Packet: type = pgppackets.Packet
    alice: str = ALICE
    bob: str = BOB


@pytest.fixture(scope="session")
def build() -> Builders:
    return Builders()
