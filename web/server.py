"""The HTTP server of chatmail-web: asyncio streams on the inherited UNIX socket.

One request per connection (nginx opens one per proxied request). Bounded everywhere: the
head is at most `MAX_HEAD` bytes, the body `MAX_BODY`, the whole request must arrive within
`REQUEST_TIMEOUT` seconds (a slow client is answered 408 and dropped), and at most
`MAX_CONNECTIONS` are served at once (the next one is answered 503 at once).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import time

from .http import MAX_HEAD, HttpError, Request, Response, error_response, parse_head
from .metrics import WebMetrics
from .newaccount import NewAccounts

REQUEST_TIMEOUT = 10.0
WRITE_TIMEOUT = 10.0
MAX_CONNECTIONS = 256
SHUTDOWN_GRACE = 5.0

log = logging.getLogger("chatmail.web")


async def read_request(reader: asyncio.StreamReader) -> Request:
    """Read a request head and its (ignored) body; `HttpError` for what is not acceptable."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise HttpError(431, "request header too large") from None
    except asyncio.IncompleteReadError as exc:
        if len(exc.partial) >= MAX_HEAD:
            raise HttpError(431, "request header too large") from None
        raise ConnectionResetError("closed before the end of the header") from None
    request = parse_head(head)
    length = request.content_length()
    if length:
        try:
            await reader.readexactly(length)
        except asyncio.IncompleteReadError:
            raise ConnectionResetError("closed before the end of the body") from None
    return request


class WebServer:
    """Serves `NewAccounts` on listening sockets until `stop()`."""

    def __init__(
        self, app: NewAccounts, listeners: list[socket.socket], metrics: WebMetrics | None = None
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.listeners = listeners
        self.active = 0
        self.tasks: set[asyncio.Task] = set()
        self._stopping: asyncio.Event | None = None

    async def serve(self) -> None:
        self._stopping = asyncio.Event()
        servers = [
            await asyncio.start_unix_server(self._connection, sock=sock, limit=MAX_HEAD)
            for sock in self.listeners
        ]
        try:
            await self._stopping.wait()
        finally:
            for server in servers:
                server.close()
            if self.tasks:
                await asyncio.wait(self.tasks, timeout=SHUTDOWN_GRACE)
            for task in self.tasks:
                task.cancel()
            log.info("stopped")

    def stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        self.active += 1
        sent = False
        try:
            if self.active > MAX_CONNECTIONS:
                response, head_only = error_response(HttpError(503, "busy, try again")), False
            else:
                response, head_only = await self._answer(reader)
            if response is not None:
                sent = await self._send(writer, response, head_only)
                if sent and self.metrics is not None:
                    self.metrics.response(response.status)
        finally:
            self.active -= 1
            self.tasks.discard(task)
            if sent:
                writer.close()
            else:
                writer.transport.abort()  # nothing (more) to say, or the peer is not reading

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[Response | None, bool]:
        """The response to the connection's request (None: the client went away)."""
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                request = await read_request(reader)
            return self.app.respond(request, time.time()), request.method == "HEAD"
        except HttpError as exc:
            return error_response(exc), False
        except TimeoutError:
            return error_response(HttpError(408, "request not complete in time")), False
        except ConnectionError:
            return None, False
        except Exception:
            log.exception("internal error answering a request")
            return error_response(HttpError(500, "internal error")), False

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, response: Response, head_only=False) -> bool:
        """Write the response; False when the peer did not take it in time."""
        try:
            writer.write(response.encode(head_only))
            async with asyncio.timeout(WRITE_TIMEOUT):
                await writer.drain()
        except (ConnectionError, TimeoutError):
            return False
        return True
