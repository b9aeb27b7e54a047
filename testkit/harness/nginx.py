"""A private nginx on loopback, serving the relay's web configuration from the production
templates (chatmail_services/templates/nginx/chatmail.conf via `nginx_values`, and the port-443
stream, chatmail-stream.conf via `stream_values`: its HTTPS port is the stream's, which hands
HTTPS on to the server on a port of its own and IMAP and SMTP to the ports given).

Its own prefix, pid file, temporary directories and logs live in `<root>/nginx`; the master
runs as root (to bind the standard ports on its own loopback address), the workers as
www-data, the group of chatmail-web's socket as in production.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from chatmail_services.web.nginxconf import render_nginx
from chatmail_services.web.nginxstream import STREAM_MODULE, StreamPorts, render_stream

from chatmail_services.config import Config

from .net import wait_for_tcp

WORKER_USER = "www-data"

MAIN_CONF = """\
load_module {stream_module};
user {user};
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 512; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    client_body_temp_path {dir}/temp/body;
    proxy_temp_path {dir}/temp/proxy;
    fastcgi_temp_path {dir}/temp/fastcgi;
    uwsgi_temp_path {dir}/temp/uwsgi;
    scgi_temp_path {dir}/temp/scgi;
    include {dir}/chatmail.conf;
}}
include {dir}/chatmail-stream.conf;
"""


def main_conf(directory: Path) -> str:
    """nginx.conf of a private nginx in `directory` (chatmail.conf and chatmail-stream.conf
    beside it)."""
    return MAIN_CONF.format(user=WORKER_USER, dir=directory, stream_module=STREAM_MODULE)


class Nginx:
    """nginx with the relay's server blocks on `address` (ports 80 and 443 unless told); the
    stream on `https_port` leads to the loopback ports of `stream` (its address: `address`)."""

    def __init__(
        self,
        root: Path,
        config: Config,
        *,
        address: str,
        tls: tuple[Path, Path],
        web_root: Path,
        web_socket: Path,
        http_port: int = 80,
        https_port: int = 443,
        stream: StreamPorts,
    ) -> None:
        self.dir = Path(root) / "nginx"
        (self.dir / "temp").mkdir(parents=True, exist_ok=True)
        (self.dir / "acme").mkdir(exist_ok=True)
        self.dir.chmod(0o755)
        subprocess.run(["chown", WORKER_USER, str(self.dir / "temp")], check=True)
        self.address = address
        self.http_port = http_port
        self.https_port = https_port
        self.stream = stream
        self.acme_root = self.dir / "acme"
        self.server_error_log = self.dir / "server-error.log"
        (self.dir / "chatmail.conf").write_text(
            render_nginx(
                config,
                tls_cert=str(tls[0]),
                tls_key=str(tls[1]),
                web_root=str(web_root),
                web_socket=str(web_socket),
                listen_addresses=(address,),
                http_port=http_port,
                stream=stream,
                acme_root=str(self.acme_root),
                error_log=str(self.server_error_log),
            )
        )
        (self.dir / "chatmail-stream.conf").write_text(
            render_stream(
                stream,
                listen_addresses=(address,),
                port=https_port,
                error_log=str(self.server_error_log),
            )
        )
        self.conf = self.dir / "nginx.conf"
        self.conf.write_text(main_conf(self.dir))
        self.process: subprocess.Popen[bytes] | None = None

    def _argv(self, *extra: str) -> list[str]:
        return ["nginx", "-p", str(self.dir), "-c", str(self.conf), *extra]

    def check(self) -> subprocess.CompletedProcess[str]:
        """`nginx -t` on the configuration."""
        return subprocess.run(self._argv("-t"), capture_output=True, text=True, timeout=30)

    def start(self) -> Nginx:
        checked = self.check()
        if checked.returncode != 0:
            raise RuntimeError(f"nginx -t failed:\n{checked.stderr}")
        with open(self.dir / "stderr.log", "ab") as log:
            self.process = subprocess.Popen(
                self._argv("-g", "daemon off;"),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        try:
            wait_for_tcp(self.https_port, host=self.address)
            wait_for_tcp(self.stream.https_backend, host=self.address)
            wait_for_tcp(self.http_port, host=self.address)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"nginx did not start:\n{self.log_text()}") from None
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # fast shutdown
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def log_files(self) -> list[Path]:
        return sorted(p for p in self.dir.glob("*.log"))

    def log_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.log_files())

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
