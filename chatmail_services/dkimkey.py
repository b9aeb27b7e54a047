"""The relay's DKIM key: creating it, and the public half as a DNS TXT record value.

The private key is a PEM RSA key (PKCS#1, as OpenDKIM and dkimpy read it) in `[dkim] key_file`,
mode 0600, owned by the user the signer runs as: nobody else can read it. The public half is
never stored separately; `public_key_b64` derives it from the private key, so the record a relay
publishes (`chatmail-dns`) always matches the key that signs.
"""

from __future__ import annotations

import base64
import os
import pwd
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .config import SettingsError

KEY_BITS = 2048


class DkimKeyError(SettingsError):
    """The key file is missing, unreadable or not an RSA private key (one line for the admin)."""


def new_private_pem() -> bytes:
    """A new RSA 2048 private key as PEM (PKCS#1), not yet stored anywhere."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def generate_key(path: str | os.PathLike[str], owner: str | None = None) -> None:
    """Create a new RSA 2048 private key at `path` (mode 0600, owned by `owner` if given).

    Refuses to replace an existing file. The key is written to a temporary file in the same
    directory and linked into place, so a crash never leaves a partial key behind.
    """
    target = Path(path)
    if target.exists():
        raise DkimKeyError(f"{target}: exists already; remove it first to make a new key")
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    pem = new_private_pem()
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        if owner:
            entry = pwd.getpwnam(owner)
            os.fchown(fd, entry.pw_uid, entry.pw_gid)
        os.write(fd, pem)
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.link(temp, target)
    finally:
        if fd >= 0:
            os.close(fd)
        temp.unlink(missing_ok=True)


def load_private_pem(path: str | os.PathLike[str]) -> bytes:
    """The key file's PEM bytes, checked to be an RSA private key."""
    try:
        pem = Path(path).read_bytes()
    except FileNotFoundError:
        raise DkimKeyError(
            f"{path}: no DKIM key (create one with chatmail-milter dkim-keygen)"
        ) from None
    except OSError as exc:
        raise DkimKeyError(f"{path}: cannot read the DKIM key: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise DkimKeyError(f"{path}: not a PEM private key without passphrase") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise DkimKeyError(f"{path}: not an RSA key")
    return pem


def public_key_b64(path: str | os.PathLike[str]) -> str:
    """Base64 of the public key (SubjectPublicKeyInfo DER): the `p=` tag of the record."""
    return public_key_b64_of_pem(load_private_pem(path))


def public_key_b64_of_pem(pem: bytes) -> str:
    """`public_key_b64` of a PEM private key given as bytes."""
    key = serialization.load_pem_private_key(pem, password=None)
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode("ascii")


def dkim_record_value(public_b64: str) -> str:
    """The TXT value at `<selector>._domainkey.<domain>` (as the reference relay publishes)."""
    return f"v=DKIM1;k=rsa;p={public_b64};s=email;t=s"
