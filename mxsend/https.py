"""One `POST /mxdeliv` to a host: TLS with SNI, verified as `tlspolicy` says, 60 s timeout.

The connection goes to an address found through our resolver (not the system's), while the
TLS server name, the certificate check and the `Host` field name the host. Returns the HTTP
status, or raises `PostFailed` for anything that is no answer (connection, TLS, timeout).
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from collections.abc import Sequence

from . import wire
from .tlspolicy import Tls


class PostFailed(Exception):
    """No HTTP answer (the text names the kind of failure, never an address)."""


def tls_context(ca_file: str, tls: Tls) -> ssl.SSLContext:
    """A client context: TLS 1.2 or newer; verified against `ca_file` (empty: the system's
    roots) unless `tls` is `UNVERIFIED`."""
    context = ssl.create_default_context(cafile=ca_file or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls is Tls.UNVERIFIED:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def post(
    host: str,
    address: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    context: ssl.SSLContext,
    *,
    port: int = wire.PORT,
    timeout: float = wire.TIMEOUT,
) -> int:
    """POST the body to https://host/mxdeliv at `address`; the status of the answer."""
    deadline = time.monotonic() + timeout
    try:
        raw = socket.create_connection((address, port), timeout=timeout)
    except OSError as exc:
        raise PostFailed(f"connect: {type(exc).__name__}") from None
    try:
        raw.settimeout(max(deadline - time.monotonic(), 0.1))
        tls = context.wrap_socket(raw, server_hostname=host)
    except (OSError, ssl.SSLError) as exc:
        raw.close()
        raise PostFailed(f"TLS: {type(exc).__name__}") from None
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    conn.sock = tls
    try:
        conn.putrequest("POST", wire.PATH, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        conn.putheader("Content-Type", "message/rfc822")
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        tls.settimeout(max(deadline - time.monotonic(), 0.1))
        conn.send(body)
        tls.settimeout(max(deadline - time.monotonic(), 0.1))
        response = conn.getresponse()
        response.read(4096)
        return response.status
    except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
        raise PostFailed(f"request: {type(exc).__name__}") from None
    finally:
        conn.close()
