"""`POST /mxdeliv` to a host: TLS with SNI, verified as `tlspolicy` says, 60 s timeout (10 s
to connect).

The connection goes to an address found through our resolver (not the system's), while the
TLS server name, the certificate check and the `Host` field name the host. `Poster.post`
returns the HTTP status, or raises `PostFailed` for anything that is no answer (connection,
TLS, timeout). Connections are kept open for the next message to the same host and address
(`IDLE_SECONDS`, below nginx's 75 s keep-alive), and the TLS contexts (with the loaded CA
certificates) are made once: a message costs no handshake when mail flows.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence

from . import wire
from .tlspolicy import Tls

IDLE_SECONDS = 30.0
IDLE_PER_HOST = 8


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


def connect(
    host: str, address: str, port: int, context: ssl.SSLContext, timeout: float
) -> http.client.HTTPConnection:
    """A new TLS connection to `address` for `host` (SNI, certificate checked for `host`)."""
    try:
        raw = socket.create_connection((address, port), timeout=min(timeout, wire.CONNECT_TIMEOUT))
    except OSError as exc:
        raise PostFailed(f"connect: {type(exc).__name__}") from None
    raw.settimeout(timeout)
    try:
        tls = context.wrap_socket(raw, server_hostname=host)
    except (OSError, ssl.SSLError) as exc:
        raw.close()
        raise PostFailed(f"TLS: {type(exc).__name__}") from None
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    conn.sock = tls
    return conn


def send_request(
    conn: http.client.HTTPConnection,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    deadline: float,
) -> http.client.HTTPResponse:
    """POST /mxdeliv on an open connection; the response with its body read."""
    assert conn.sock is not None
    conn.sock.settimeout(max(deadline - time.monotonic(), 0.1))
    conn.putrequest("POST", wire.PATH, skip_accept_encoding=True)
    for name, value in headers:
        conn.putheader(name, value)
    conn.putheader("Content-Type", "message/rfc822")
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders()
    conn.send(body)
    conn.sock.settimeout(max(deadline - time.monotonic(), 0.1))
    response = conn.getresponse()
    response.read(4096)
    return response


class Poster:
    """Posts messages; keeps idle connections per (host, address, port, TLS) and one TLS
    context per verification mode. Thread-safe."""

    def __init__(self, ca_file: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.ca_file = ca_file
        self.clock = clock
        self._contexts: dict[Tls, ssl.SSLContext] = {}
        self._idle: dict[tuple, list[tuple[float, http.client.HTTPConnection]]] = {}
        self._lock = threading.Lock()

    def context(self, tls: Tls) -> ssl.SSLContext:
        with self._lock:
            if tls not in self._contexts:
                self._contexts[tls] = tls_context(self.ca_file, tls)
            return self._contexts[tls]

    def _take(self, key: tuple) -> http.client.HTTPConnection | None:
        with self._lock:
            idle = self._idle.get(key, [])
            while idle:
                since, conn = idle.pop()
                if self.clock() - since < IDLE_SECONDS:
                    return conn
                conn.close()
        return None

    def _give(self, key: tuple, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < IDLE_PER_HOST:
                idle.append((self.clock(), conn))
                return
        conn.close()

    def post(
        self,
        host: str,
        address: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        tls: Tls,
        *,
        port: int = wire.PORT,
        timeout: float = wire.TIMEOUT,
    ) -> int:
        """POST the body to https://host/mxdeliv at `address`; the status of the answer.

        A kept connection that fails before any answer (the server closed it while idle)
        is replaced by a new one once."""
        key = (host, address, port, tls)
        deadline = time.monotonic() + timeout
        conn = self._take(key)
        reused = conn is not None
        while True:
            if conn is None:
                conn = connect(host, address, port, self.context(tls), timeout)
            try:
                response = send_request(conn, headers, body, deadline)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                conn.close()
                if reused:
                    conn, reused = None, False
                    continue
                raise PostFailed("request: the connection was closed") from None
            except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
                conn.close()
                raise PostFailed(f"request: {type(exc).__name__}") from None
            if response.will_close or not response.isclosed():
                conn.close()  # the server ends it, or more body than an answer has
            else:
                self._give(key, conn)
            return response.status
