"""A self-signed certificate for relays without a CA-signed one ([tls] self_signed)."""

from __future__ import annotations

import datetime
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

VALID_DAYS = 3650


def subject_names(domain: str) -> list[x509.GeneralName]:
    """The names the certificate covers: the domain and its mta-sts. and www. hosts, or the
    address itself when the mail domain is an IP address."""
    try:
        return [x509.IPAddress(ipaddress.ip_address(domain))]
    except ValueError:
        return [x509.DNSName(name) for name in (domain, f"mta-sts.{domain}", f"www.{domain}")]


def self_signed(
    domain: str, *, valid_days: int = VALID_DAYS, now: datetime.datetime | None = None
) -> tuple[bytes, bytes]:
    """(certificate PEM, private key PEM): a new P-256 key and a certificate for `domain`,
    valid `valid_days` from `now` (default: this moment; tests make expired ones)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    now = now or datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=valid_days))
        .add_extension(x509.SubjectAlternativeName(subject_names(domain)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem
