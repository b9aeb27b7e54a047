"""A local stand-in for the push notification service (notifications.delta.chat), for the
push tests and the IMAP benchmark: nothing leaves the machine."""

from __future__ import annotations

import http.server
import ssl
import threading
from pathlib import Path

from .net import free_port
from .tls import self_signed_cert


class StandIn:
    """An HTTPS server in place of notifications.delta.chat: records each POSTed token and
    answers with `answers.get(token, 200)`; can go down and come back on the same port."""

    def __init__(self, directory: Path) -> None:
        self.cert, self.key = self_signed_cert(directory, "notify.localhost")
        self.cert.chmod(0o644)
        self.port = free_port()
        self.received: list[str] = []
        self.answers: dict[str, int] = {}
        self.lock = threading.Lock()
        self.server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/notify"

    def start(self) -> None:
        stand_in = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                with stand_in.lock:
                    if self.path == "/notify":
                        stand_in.received.append(body)
                    status = stand_in.answers.get(body, 200)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self.server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def count(self, token: str) -> int:
        with self.lock:
            return self.received.count(token)
