"""The dict server: an asyncio loop over raw non-blocking UNIX sockets.

Connection setup is the hot path (Dovecot 2.3 opens a connection for nearly every lookup), so
this uses the loop's reader callbacks on plain sockets instead of transports and protocols:
accept, read at once what the client already sent, answer, and wait for EOF. Replies leave in
order; pipelined lines are answered in one write. Slow work (account creation, iteration)
runs in worker threads while the connection's later lines wait.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import logging
import resource
import signal
import socket

from .accounts import Settings
from .session import Deferred, Session

log = logging.getLogger("chatmail.auth")

MAX_LINE = 64 * 1024  # Dovecot's DICT_CLIENT_MAX_LINE_LENGTH
MAX_PENDING_OUTPUT = 256 * 1024
ACCEPTS_PER_WAKEUP = 64
SHUTDOWN_GRACE = 10.0
FD_RESERVE = 64  # descriptors kept free for account files, the thread pool, logging


def connection_limit() -> int:
    """How many connections to hold open at once: the descriptor limit minus a reserve."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1 << 20
    return max(16, soft - FD_RESERVE)


class _Conn:
    __slots__ = (
        "buf", "busy", "eof", "fd", "out", "reading", "session", "skipping", "sock", "writing",
    )  # fmt: skip

    def __init__(self, sock: socket.socket, session: Session) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.session = session
        self.buf = b""
        self.out = b""
        self.busy = False
        self.skipping = False  # discarding the rest of an overlong line
        self.eof = False
        self.reading = False
        self.writing = False


class DictServer:
    """Serves the dict protocol on listening UNIX sockets until `stop()`."""

    def __init__(self, settings: Settings, listeners: list[socket.socket], workers: int = 8):
        self.settings = settings
        self.listeners = listeners
        self.pool = concurrent.futures.ThreadPoolExecutor(workers, "chatmail-auth")
        self.conns: dict[int, _Conn] = {}
        self.max_conns = connection_limit()
        self._paused = False  # not accepting: at max_conns (the rest wait in the listen queue)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    # -- life cycle --

    async def serve(self) -> None:
        """Accept and serve until `stop()`; then finish pending work and close everything."""
        self.loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        for lsock in self.listeners:
            lsock.setblocking(False)
            self.loop.add_reader(lsock.fileno(), self._accept, lsock)
        try:
            await self._stopping.wait()
        finally:
            await self._shutdown()

    def stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()

    def install_signal_handlers(self) -> None:
        assert self.loop is not None
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(sig, self.stop)

    async def _shutdown(self) -> None:
        loop = self.loop
        assert loop is not None
        for lsock in self.listeners:
            loop.remove_reader(lsock.fileno())
            lsock.close()
        deadline = loop.time() + SHUTDOWN_GRACE
        while any(c.busy or c.out for c in self.conns.values()) and loop.time() < deadline:
            await asyncio.sleep(0.02)
        for conn in list(self.conns.values()):
            self._close(conn)
        self.pool.shutdown(wait=True)
        log.info("stopped")

    # -- connections --

    def _accept(self, lsock: socket.socket) -> None:
        for _ in range(ACCEPTS_PER_WAKEUP):
            if len(self.conns) >= self.max_conns:
                self._set_paused(True)
                return
            try:
                sock, _addr = lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO):
                    continue
                # EMFILE/ENFILE/ENOBUFS: leave the queue alone for a moment instead of spinning
                log.error("accept failed: %s", exc.strerror)
                self._pause_accepting(lsock)
                return
            sock.setblocking(False)
            conn = _Conn(sock, Session(self.settings))
            self.conns[conn.fd] = conn
            self._read(conn)  # the client usually sent hello and lookup already
            if conn.fd in self.conns and not conn.eof and not conn.out:
                self.loop.add_reader(conn.fd, self._read, conn)  # type: ignore[union-attr]
                conn.reading = True

    def _pause_accepting(self, lsock: socket.socket, seconds: float = 0.1) -> None:
        loop = self.loop
        assert loop is not None
        loop.remove_reader(lsock.fileno())

        def resume() -> None:
            stopping = self._stopping is not None and self._stopping.is_set()
            if not stopping and not self._paused:
                loop.add_reader(lsock.fileno(), self._accept, lsock)

        loop.call_later(seconds, resume)

    def _set_paused(self, paused: bool) -> None:
        if paused == self._paused or (self._stopping and self._stopping.is_set()):
            return
        self._paused = paused
        for lsock in self.listeners:
            if paused:
                self.loop.remove_reader(lsock.fileno())  # type: ignore[union-attr]
            else:
                self.loop.add_reader(lsock.fileno(), self._accept, lsock)  # type: ignore[union-attr]

    def _read(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        if not data:
            conn.eof = True
            self._stop_reading(conn)
            if not conn.busy and not conn.out:
                self._close(conn)
            return
        conn.buf += data
        self._process(conn)

    def _process(self, conn: _Conn) -> None:
        out = []
        while not conn.busy:
            end = conn.buf.find(b"\n")
            if conn.skipping:
                conn.buf = b"" if end < 0 else conn.buf[end + 1 :]
                if end < 0:
                    break
                conn.skipping = False
                continue
            if end < 0:
                if len(conn.buf) > MAX_LINE:
                    out.append("Fline too long\n")
                    conn.buf = b""
                    conn.skipping = True
                break
            line = conn.buf[:end].decode("utf-8", "surrogateescape")
            conn.buf = conn.buf[end + 1 :]
            try:
                reply = conn.session.handle(line)
            except Exception:
                log.exception("internal error serving a dict line")
                reply = "Finternal error\n"
            if reply is None:
                continue
            if isinstance(reply, Deferred):
                conn.busy = True
                future = self.loop.run_in_executor(self.pool, reply.work)  # type: ignore[union-attr]
                future.add_done_callback(lambda f, c=conn, d=reply: self._finish(c, d, f))
                break
            out.append(reply)
        if out:
            self._write(conn, "".join(out).encode("utf-8", "surrogateescape"))
        if conn.out and len(conn.out) > MAX_PENDING_OUTPUT:
            self._stop_reading(conn)  # the client does not read: stop reading from it
        elif conn.eof and not conn.busy and not conn.out and conn.fd in self.conns:
            self._close(conn)

    def _finish(self, conn: _Conn, deferred: Deferred, future: asyncio.Future) -> None:
        conn.busy = False
        if conn.fd not in self.conns or self.conns[conn.fd] is not conn:
            return
        try:
            reply = deferred.finish(future.result())
        except Exception:
            log.exception("internal error in deferred dict work")
            reply = "Finternal error\n"
        self._write(conn, reply.encode("utf-8", "surrogateescape"))
        if conn.fd in self.conns:
            self._process(conn)

    def _write(self, conn: _Conn, data: bytes) -> None:
        if conn.out:
            conn.out += data
            return
        try:
            sent = conn.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._close(conn)
            return
        if sent < len(data):
            conn.out = data[sent:]
            self.loop.add_writer(conn.fd, self._flush, conn)  # type: ignore[union-attr]
            conn.writing = True

    def _flush(self, conn: _Conn) -> None:
        try:
            sent = conn.sock.send(conn.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        conn.out = conn.out[sent:]
        if conn.out:
            return
        self.loop.remove_writer(conn.fd)  # type: ignore[union-attr]
        conn.writing = False
        if conn.eof and not conn.busy:
            self._close(conn)
        elif not conn.eof and not conn.reading:
            self.loop.add_reader(conn.fd, self._read, conn)  # type: ignore[union-attr]
            conn.reading = True
            self._process(conn)

    def _stop_reading(self, conn: _Conn) -> None:
        if conn.reading:
            self.loop.remove_reader(conn.fd)  # type: ignore[union-attr]
            conn.reading = False

    def _close(self, conn: _Conn) -> None:
        if self.conns.get(conn.fd) is not conn:
            return
        del self.conns[conn.fd]
        self._stop_reading(conn)
        if conn.writing:
            self.loop.remove_writer(conn.fd)  # type: ignore[union-attr]
            conn.writing = False
        with contextlib.suppress(OSError):
            conn.sock.close()
        if self._paused and len(self.conns) < self.max_conns:
            self._set_paused(False)
