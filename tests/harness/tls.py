"""A self-signed certificate for the local relay."""

from __future__ import annotations

import subprocess
from pathlib import Path


def self_signed_cert(directory: Path, domain: str) -> tuple[Path, Path]:
    """Create (or reuse) a self-signed certificate for domain; return (cert, key) paths."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    if not (cert.exists() and key.exists()):
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
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
            ],
            check=True,
            capture_output=True,
        )
        key.chmod(0o640)
    return cert, key
