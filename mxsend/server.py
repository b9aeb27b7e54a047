"""The LMTP server of chatmail-mxsend: a thread per Postfix connection on the inherited socket.

Postfix's lmtp client opens up to `mxsend_destination_concurrency_limit` connections; each is
served by its own thread (HTTPS and the hand-back block), at most `MAX_CONNECTIONS` at once
(more wait in the socket's backlog). An idle connection is closed after `IDLE_TIMEOUT`.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading

from . import lmtp
from .deliver import Sender

MAX_CONNECTIONS = 100
IDLE_TIMEOUT = 300.0

log = logging.getLogger("chatmail.mxsend")


def serve_connection(conn: socket.socket, sender: Sender, name: str, max_size: int) -> None:
    """One LMTP session; errors end the connection (Postfix then defers: nothing is lost)."""
    conn.settimeout(IDLE_TIMEOUT)
    try:
        with conn, conn.makefile("rb") as rfile, conn.makefile("wb") as wfile:
            lmtp.serve_session(rfile, wfile, name, max_size, sender.deliver)
    except OSError as exc:
        log.info("LMTP connection ended: %s", type(exc).__name__)
    except Exception:
        log.exception("LMTP session failed")


def serve(listener: socket.socket, sender: Sender, name: str, max_size: int) -> None:
    """Accept connections until SIGTERM or SIGINT. Sessions still running end with the
    process: Postfix sees the connection lost and keeps the message for a later try (a message
    whose HTTPS delivery was done but not yet answered may then arrive twice; Delta Chat drops
    the duplicate by its Message-ID)."""
    slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
    stopping = threading.Event()

    def stop(_signum: int, _frame: object) -> None:
        stopping.set()
        listener.close()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def run(conn: socket.socket) -> None:
        try:
            serve_connection(conn, sender, name, max_size)
        finally:
            slots.release()

    while not stopping.is_set():
        slots.acquire()
        try:
            conn, _ = listener.accept()
        except OSError:
            slots.release()
            if stopping.is_set():
                break
            raise
        threading.Thread(target=run, args=(conn,), daemon=True).start()
