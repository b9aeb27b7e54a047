"""The dict server of chatmail-auth and chatmail-metadata: asyncio for the life cycle, one
inner epoll set for the sockets.

Connection setup is the hot path (Dovecot 2.3 opens a connection for nearly every lookup), so
connections are plain sockets in an epoll set of their own, which the asyncio loop watches as
one reader: one wakeup dispatches every ready socket without per-socket asyncio handles, and a
closed socket leaves the set by itself. Per connection: accept, read at once what the client
already sent, answer, wait for EOF. Replies leave in order; pipelined lines are answered in one
write. Slow work (account creation, iteration) runs in worker threads while the connection's
later lines wait. Signals, timers and the thread pool's results stay with asyncio.

What a service answers is its `Session` (one per connection, made by the session factory):
`handle(line)` returns the reply text, None, or a `Deferred` for a worker thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import logging
import os
import resource
import select
import signal
import socket
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .activation import inherited_sockets, notify_ready

MAX_LINE = 64 * 1024  # Dovecot's DICT_CLIENT_MAX_LINE_LENGTH
MAX_PENDING_OUTPUT = 256 * 1024
ACCEPTS_PER_WAKEUP = 64
EVENTS_PER_WAKEUP = 512
SHUTDOWN_GRACE = 10.0
FD_RESERVE = 64  # descriptors kept free for account files, the thread pool, logging
_IN = select.EPOLLIN
_OUT = select.EPOLLOUT
_DONTWAIT = socket.MSG_DONTWAIT


@dataclass
class Deferred:
    """Slow work for a worker thread, and how to turn its result into the reply."""

    work: Callable[[], Any]
    finish: Callable[[Any], str]


class Session(Protocol):
    """One connection's state: serves one protocol line at a time."""

    def handle(self, line: str) -> str | Deferred | None: ...


def connection_limit() -> int:
    """How many connections to hold open at once: the descriptor limit minus a reserve."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1 << 20
    return max(16, soft - FD_RESERVE)


class _Conn:
    __slots__ = ("buf", "busy", "eof", "fd", "mask", "out", "session", "skipping", "sock")

    def __init__(self, sock: socket.socket, session: Session) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.session = session
        self.buf = b""
        self.out = b""  # reply bytes the socket did not take yet
        self.busy = False  # a Deferred is running; later lines wait
        self.skipping = False  # discarding the rest of an overlong line
        self.eof = False  # the client has shut down its side
        self.mask: int | None = None  # events registered in the epoll set; None: not in it


class DictServer:
    """Serves the dict protocol on listening UNIX sockets until `stop()`."""

    def __init__(
        self,
        new_session: Callable[[], Session],
        listeners: list[socket.socket],
        workers: int = 8,
        name: str = "dict",
    ):
        """`name` is the service's: threads are `chatmail-<name>`, the logger `chatmail.<name>`."""
        self.new_session = new_session
        self.log = logging.getLogger(f"chatmail.{name}")
        self.listeners = {lsock.fileno(): lsock for lsock in listeners}
        self.pool = concurrent.futures.ThreadPoolExecutor(workers, f"chatmail-{name}")
        self.conns: dict[int, _Conn] = {}
        self.max_conns = connection_limit()
        self.epoll = select.epoll()
        self._accepting = False
        self._paused_until = 0.0  # after EMFILE and the like: a short pause, no spinning
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    # -- life cycle --

    async def serve(self) -> None:
        """Accept and serve until `stop()`; then finish pending work and close everything."""
        self.loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        for lsock in self.listeners.values():
            lsock.setblocking(False)
        self._set_accepting(True)
        self.loop.add_reader(self.epoll.fileno(), self._poll)
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
        self._set_accepting(False)
        for lsock in self.listeners.values():
            lsock.close()
        deadline = loop.time() + SHUTDOWN_GRACE
        while any(c.busy or c.out for c in self.conns.values()) and loop.time() < deadline:
            await asyncio.sleep(0.02)
        for conn in list(self.conns.values()):
            self._close(conn)
        loop.remove_reader(self.epoll.fileno())
        self.epoll.close()
        self.pool.shutdown(wait=True)
        self.log.info("stopped")

    # -- the epoll set --

    def _poll(self) -> None:
        try:
            events = self.epoll.poll(0, EVENTS_PER_WAKEUP)
        except InterruptedError:
            return
        conns = self.conns
        for fd, ev in events:
            conn = conns.get(fd)
            if conn is None:
                lsock = self.listeners.get(fd)
                if lsock is not None and self._accepting:
                    self._accept(lsock)
                continue
            if ev & _OUT and conn.out:
                self._flush(conn)
            if ev & ~_OUT and not conn.eof:  # readable, hang-up or error: read tells
                self._read(conn)

    def _update(self, conn: _Conn) -> None:
        """Register what the connection waits for: input (unless EOF or the client is not
        keeping up), output if pending; nothing at all while only a Deferred is awaited (a
        hung-up socket would otherwise report EPOLLHUP on every wakeup)."""
        if self.conns.get(conn.fd) is not conn:
            return
        wants_input = not (
            conn.eof
            or len(conn.out) > MAX_PENDING_OUTPUT
            or (conn.busy and len(conn.buf) > 4 * MAX_LINE)
        )
        mask = (_IN if wants_input else 0) | (_OUT if conn.out else 0)
        if mask == conn.mask:
            return
        if not mask:
            self.epoll.unregister(conn.fd)
            conn.mask = None
        elif conn.mask is None:
            self.epoll.register(conn.fd, mask)
            conn.mask = mask
        else:
            self.epoll.modify(conn.fd, mask)
            conn.mask = mask

    def _set_accepting(self, accepting: bool) -> None:
        if accepting == self._accepting:
            return
        if accepting and self._stopping is not None and self._stopping.is_set():
            return
        self._accepting = accepting
        for fd in self.listeners:
            if accepting:
                self.epoll.register(fd, _IN)
            else:
                with contextlib.suppress(OSError):
                    self.epoll.unregister(fd)

    # -- connections --

    def _accept(self, lsock: socket.socket) -> None:
        for _ in range(ACCEPTS_PER_WAKEUP):
            if len(self.conns) >= self.max_conns:
                self._set_accepting(False)  # the rest wait in the listen queue
                return
            try:
                sock, _addr = lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO):
                    continue
                # EMFILE/ENFILE/ENOBUFS: leave the queue alone for a moment instead of spinning
                self.log.error("accept failed: %s", exc.strerror)
                self._set_accepting(False)
                self.loop.call_later(0.1, self._resume_accepting)  # type: ignore[union-attr]
                return
            # The socket stays in blocking mode; every call passes MSG_DONTWAIT instead.
            conn = _Conn(sock, self.new_session())
            self.conns[conn.fd] = conn
            self._read(conn)  # the client usually sent hello and lookup already
            self._update(conn)

    def _resume_accepting(self) -> None:
        if len(self.conns) < self.max_conns:
            self._set_accepting(True)

    def _read(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(65536, _DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        if not data:
            conn.eof = True
            if not conn.busy and not conn.out:
                self._close(conn)
            else:
                self._update(conn)
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
                self.log.exception("internal error serving a dict line")
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
        if conn.eof and not conn.busy and not conn.out:
            self._close(conn)
        else:
            self._update(conn)

    def _finish(self, conn: _Conn, deferred: Deferred, future: asyncio.Future) -> None:
        conn.busy = False
        if self.conns.get(conn.fd) is not conn:
            return
        try:
            reply = deferred.finish(future.result())
        except Exception:
            self.log.exception("internal error in deferred dict work")
            reply = "Finternal error\n"
        self._write(conn, reply.encode("utf-8", "surrogateescape"))
        if self.conns.get(conn.fd) is conn:
            self._process(conn)

    def _write(self, conn: _Conn, data: bytes) -> None:
        if conn.out:
            conn.out += data
            return
        try:
            sent = conn.sock.send(data, _DONTWAIT)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._close(conn)
            return
        if sent < len(data):
            conn.out = data[sent:]

    def _flush(self, conn: _Conn) -> None:
        try:
            sent = conn.sock.send(conn.out, _DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        conn.out = conn.out[sent:]
        if not conn.out and conn.eof and not conn.busy:
            self._close(conn)
            return
        self._update(conn)
        if not conn.out:
            self._process(conn)  # lines that waited while the client was not reading

    def _close(self, conn: _Conn) -> None:
        if self.conns.get(conn.fd) is not conn:
            return
        del self.conns[conn.fd]
        # closing the descriptor removes it from the epoll set
        with contextlib.suppress(OSError):
            conn.sock.close()
        if not self._accepting and len(self.conns) < self.max_conns:
            self._set_accepting(True)


# -- running a service --

SOCKET_MODE = 0o660


def raise_fd_limit() -> None:
    """Soft descriptor limit up to the hard one: one descriptor per concurrent connection."""
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or hard > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def bind(path: str) -> socket.socket:
    """Listen on a UNIX socket at `path` (mode 0660), replacing a stale socket file."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    os.chmod(path, SOCKET_MODE)
    sock.listen(4096)
    return sock


def serve(new_session: Callable[[], Session], socket_path: str, name: str) -> int:
    """`serve` of a dict service: the inherited sockets (socket activation), else `socket_path`;
    until SIGTERM or SIGINT. Returns the exit status."""
    log = logging.getLogger(f"chatmail.{name}")
    raise_fd_limit()
    listeners = inherited_sockets()
    if listeners:
        log.info("serving %d inherited socket(s)", len(listeners))
    else:
        try:
            listeners = [bind(socket_path)]
        except OSError as exc:
            log.error("cannot listen on %s: %s", socket_path, exc.strerror)
            return 1
        log.info("listening on %s", socket_path)
    server = DictServer(new_session, listeners, name=name)

    async def run() -> None:
        server.loop = asyncio.get_running_loop()
        server.install_signal_handlers()
        notify_ready()
        await server.serve()

    asyncio.run(run())
    return 0
