"""Certificates for test relays: self-signed for a single relay, or issued by a test CA.

With a test CA (`TestCA`) every relay's certificate names its domain and chains to one CA
certificate that the relays trust for outgoing TLS (`smtp_tls_CAfile`), so Postfix's
`smtp_tls_security_level = verify` really verifies between them, as between public relays.
"""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

_EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def self_signed_cert(directory: Path, domain: str) -> tuple[Path, Path]:
    """Create (or reuse) a self-signed certificate for domain; return (cert, key) paths."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    if not (cert.exists() and key.exists()):
        _openssl(
            "req",
            "-x509",
            *_EC_KEY,
            "-days",
            "3650",
            "-subj",
            f"/CN={domain}",
            "-addext",
            f"subjectAltName=DNS:{domain},IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        )
        key.chmod(0o640)
    return cert, key


class TestCA:
    """A certificate authority in `directory` (ca.pem, ca.key) that issues server certificates."""

    __test__ = False  # not a pytest test class

    def __init__(self, directory: Path, name: str = "chatmail test CA") -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cert = self.dir / "ca.pem"
        self.key = self.dir / "ca.key"
        if not (self.cert.exists() and self.key.exists()):
            _openssl(
                "req",
                "-x509",
                *_EC_KEY,
                "-days",
                "3650",
                "-subj",
                f"/CN={name}",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-keyout",
                str(self.key),
                "-out",
                str(self.cert),
            )
            self.key.chmod(0o600)
        self.cert.chmod(0o644)

    def issue(self, directory: Path, domain: str) -> tuple[Path, Path]:
        """A server certificate for `domain` (SAN DNS:domain) in directory; (cert, key)."""
        directory = Path(directory)
        cert, key = directory / "cert.pem", directory / "key.pem"
        if cert.exists() and key.exists():
            return cert, key
        request = directory / "cert.csr"
        extensions = directory / "cert.ext"
        _openssl(
            "req",
            "-new",
            *_EC_KEY,
            "-subj",
            f"/CN={domain}",
            "-keyout",
            str(key),
            "-out",
            str(request),
        )
        extensions.write_text(
            f"subjectAltName=DNS:{domain}\n"
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature\n"
            "extendedKeyUsage=serverAuth\n"
        )
        with _SIGNING:  # relays are configured side by side: one writer of the serial file
            _sign(request, self.cert, self.key, extensions, cert)
        request.unlink()
        extensions.unlink()
        key.chmod(0o640)
        return cert, key


_SIGNING = threading.Lock()


def _sign(request: Path, ca_cert: Path, ca_key: Path, extensions: Path, cert: Path) -> None:
    """Sign the request with the CA (`-CAcreateserial` reads and writes the CA's serial file)."""
    _openssl(
        "x509",
        "-req",
        "-in",
        str(request),
        "-CA",
        str(ca_cert),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-days",
        "3650",
        "-extfile",
        str(extensions),
        "-out",
        str(cert),
    )
