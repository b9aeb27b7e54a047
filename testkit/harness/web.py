"""The relay's web face on loopback: chatmail-web as its units describe it, the pages that
`chatmail-web site` writes, and a private nginx in front (testkit/harness/nginx.py)."""

from __future__ import annotations

import http.client
import json
import ssl
import subprocess
from pathlib import Path

from chatmail_services.web.nginxstream import StreamPorts

from chatmail_services.config import Config

from . import MAIL_USER, VENV_BIN
from .activation import ActivatedService
from .net import free_port
from .nginx import Nginx
from .units import UNITS_DIR, exec_start, read_unit, unit_value

PRODUCTION_MAIL_USER = "vmail"
UNIT_SOCKET = "/run/chatmail/web.sock"


def _user(name: str | None) -> str | None:
    return MAIL_USER if name == PRODUCTION_MAIL_USER else name


def web_service(config_path: Path, socket_path: Path, log_path: Path) -> ActivatedService:
    """chatmail-web as chatmail-web.{socket,service} start it (socket owner, group, mode,
    user; the production mail user replaced by the test one)."""
    socket_unit = read_unit(UNITS_DIR / "chatmail-web.socket")
    service_unit = read_unit(UNITS_DIR / "chatmail-web.service")
    if unit_value(socket_unit, "Socket", "ListenStream") != UNIT_SOCKET:
        raise ValueError("chatmail-web.socket listens elsewhere than the harness expects")
    return ActivatedService(
        exec_start(service_unit, VENV_BIN),
        socket_path,
        log_path=log_path,
        mode=int(unit_value(socket_unit, "Socket", "SocketMode") or "0666", 8),
        user=_user(unit_value(service_unit, "Service", "User")),
        socket_user=_user(unit_value(socket_unit, "Socket", "SocketUser")),
        group=unit_value(socket_unit, "Socket", "SocketGroup"),
        env={"CHATMAIL_CONFIG": str(config_path)},
        cwd=log_path.parent,
    )


def write_site(config_path: Path, web_root: Path) -> list[str]:
    """Run `chatmail-web site` into web_root; the paths it printed."""
    result = subprocess.run(
        [str(VENV_BIN / "chatmail-web"), "--config", str(config_path), "site", str(web_root)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.split()


class WebFront:
    """chatmail-web behind nginx on `address`, with the site in `<root>/www`. nginx's HTTPS port
    is the stream of port 443: IMAP and SMTP by ALPN to `imaps_port` and `smtps_port` of
    `address` (free ports where nothing listens unless given), the rest to the HTTPS server."""

    def __init__(
        self,
        root: Path,
        config: Config,
        *,
        address: str,
        tls: tuple[Path, Path],
        http_port: int = 80,
        https_port: int = 443,
        imaps_port: int | None = None,
        smtps_port: int | None = None,
    ) -> None:
        self.root = Path(root)
        self.config = config
        self.address = address
        self.tls = tls
        self.web_root = self.root / "www"
        self.socket = self.root / "run" / "web.sock"
        self.logs = self.root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.service = web_service(Path(config.path), self.socket, self.logs / "chatmail-web.log")
        self.nginx = Nginx(
            self.root,
            config,
            address=address,
            tls=tls,
            web_root=self.web_root,
            web_socket=self.socket,
            http_port=http_port,
            https_port=https_port,
            stream=StreamPorts(
                address=address,
                https_backend=free_port(address),
                smtps_hop=free_port(address),
                imaps_hop=free_port(address),
                smtps=smtps_port or free_port(address),
                imaps=imaps_port or free_port(address),
            ),
        )

    @property
    def domain(self) -> str:
        return self.config.chatmail.mail_domain

    def start(self) -> WebFront:
        write_site(Path(self.config.path), self.web_root)
        self.service.start()
        try:
            self.nginx.start()
        except BaseException:
            self.service.close()
            raise
        return self

    def stop(self) -> None:
        self.nginx.stop()
        self.service.close()

    def https(self, timeout: float = 30, source: str | None = None) -> http.client.HTTPSConnection:
        """A connection to nginx's HTTPS port, from the loopback address `source` if given;
        the (self-signed) certificate is trusted as its own issuer, the name is not checked
        (the connection goes to an address)."""
        context = ssl.create_default_context(cafile=str(self.tls[0]))
        context.check_hostname = False
        return http.client.HTTPSConnection(
            self.address,
            self.nginx.https_port,
            timeout=timeout,
            context=context,
            source_address=(source, 0) if source else None,
        )

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        host: str | None = None,
        source: str | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """One request over HTTPS (from `source`, see `https`): (status, lower-case headers,
        body)."""
        conn = self.https(source=source)
        try:
            conn.request(method, path, body=body, headers={"Host": host or self.domain})
            response = conn.getresponse()
            return (
                response.status,
                {k.lower(): v for k, v in response.getheaders()},
                response.read(),
            )
        finally:
            conn.close()

    def new_account(self) -> dict[str, str]:
        """POST /new through nginx, as the Delta Chat core does; the JSON answer."""
        status, _headers, body = self.request("POST", "/new", b"")
        if status != 200:
            raise RuntimeError(f"/new answered {status}: {body!r}")
        return json.loads(body)

    def __enter__(self) -> WebFront:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
