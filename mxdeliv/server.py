"""The HTTP server of chatmail-mxdeliv: asyncio streams on the inherited UNIX socket.

One request per connection (nginx opens one per proxied request), read whole: the head is at
most `MAX_HEAD` bytes (one `X-Mail-To` per recipient), the body at most the largest message,
and both must arrive within `REQUEST_TIMEOUT` seconds. The hand-over to Postfix runs in a
worker thread; at most `MAX_CONNECTIONS` requests are served at once, the next one is answered
`451` at once. Whatever fails inside is a 400 with a `451` body: never a 200.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import socket

from chatmail_services.web.http import HttpError, Request, Response, parse_head

from . import app
from .app import Settings
from .envelope import Envelope
from .handoff import hand_over
from .metrics import MxdelivMetrics
from .replies import BAD_REQUEST, BUSY, TEMPORARY, TIMEOUT, Reply, refused

MAX_HEAD = 64 * 1024
MAX_HEADERS = 2048
REQUEST_TIMEOUT = 60.0
SMTP_TIMEOUT = 45.0  # below the 60 s a sender waits for the answer
WRITE_TIMEOUT = 10.0
MAX_CONNECTIONS = 64
SHUTDOWN_GRACE = 30.0

log = logging.getLogger("chatmail.mxdeliv")


async def read_request(reader: asyncio.StreamReader, max_body: int) -> tuple[Request, bytes]:
    """The request head and its body; `HttpError` 413 for a body over `max_body`, 400 for a
    malformed head."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise HttpError(431, "request header too large") from None
    except asyncio.IncompleteReadError:
        raise ConnectionResetError("closed before the end of the header") from None
    request = parse_head(head, MAX_HEAD, MAX_HEADERS)
    length = request.content_length(max_body)
    try:
        body = await reader.readexactly(length) if length else b""
    except asyncio.IncompleteReadError:
        raise ConnectionResetError("closed before the end of the body") from None
    return request, body


class MxdelivServer:
    """Serves `POST /mxdeliv` on listening sockets until `stop()`."""

    def __init__(
        self,
        settings: Settings,
        listeners: list[socket.socket],
        metrics: MxdelivMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.listeners = listeners
        self.active = 0
        self.tasks: set[asyncio.Task] = set()
        self._stopping: asyncio.Event | None = None

    def deliver(self, envelope: Envelope, message: bytes) -> Reply:
        """The hand-over to Postfix (blocking: run in a worker thread)."""
        settings = self.settings
        return hand_over(settings.smtpd_host, settings.smtpd_port, envelope, message, SMTP_TIMEOUT)

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
                response: Response | None = refused(BUSY)
            else:
                response = await self._answer(reader)
            if response is not None:
                sent = await self._send(writer, response)
                if sent and self.metrics is not None:
                    self.metrics.response(response)
        finally:
            self.active -= 1
            self.tasks.discard(task)
            if sent:
                writer.close()
            else:
                writer.transport.abort()

    async def _answer(self, reader: asyncio.StreamReader) -> Response | None:
        """The response to the connection's request (None: the client went away)."""
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                request, body = await read_request(reader, self.settings.max_message_size)
        except HttpError as exc:
            return app.too_large() if exc.status == 413 else refused(BAD_REQUEST)
        except TimeoutError:
            return refused(TIMEOUT)
        except ConnectionError:
            return None
        try:
            respond = functools.partial(app.respond, request, body, self.settings, self.deliver)
            return await asyncio.to_thread(respond)
        except Exception:
            log.exception("internal error answering a request")
            return refused(TEMPORARY)

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, response: Response) -> bool:
        """Write the response; False when the peer did not take it in time."""
        try:
            writer.write(response.encode())
            async with asyncio.timeout(WRITE_TIMEOUT):
                await writer.drain()
        except (ConnectionError, TimeoutError):
            return False
        return True
