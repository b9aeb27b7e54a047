"""A complete chatmail relay on loopback: Postfix, Dovecot and our socket-activated services.

Used by scripts/relay.sh, the end-to-end tests, the federation tests and bench/relay. The
services run exactly as their units in systemd-units/ describe (ExecStart, socket path, owner
and mode, user), with paths moved under one state root and the production mail user replaced by
the test one. Each relay has its own DKIM key in its state root, so its milter signs.

A single relay lives on 127.0.0.1 with free ports. Several relays side by side (tests/federation,
docs/testing.md) each get their own loopback address with the standard ports, a certificate from
a shared test CA (trusted for verified outgoing TLS), and a test nameserver for Postfix's MX
look-ups and the milter's DKIM key look-ups.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import subprocess
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from chatmail_services.dnszone.records import dkim_record

from chatmail_services import dkimkey
from chatmail_services.config import Config

from . import MAIL_USER, VENV_BIN
from .activation import ActivatedService
from .dovecot import Dovecot
from .fixtures import stack_config
from .net import free_port, wait_for_unix
from .postfix import Postfix
from .render import SYSTEM_CA_FILE
from .tls import TestCA, self_signed_cert
from .units import UNITS_DIR, exec_start, read_unit, unit_value
from .web import WebFront

PRODUCTION_MAIL_USER = "vmail"


@dataclass
class Ports:
    """Loopback ports of the relay; None picks a free one."""

    smtp: int | None = None
    submission: int | None = None
    smtps: int | None = None
    imap: int | None = None
    imaps: int | None = None


# A relay on its own loopback address listens where a real one does.
STANDARD_PORTS = Ports(smtp=25, submission=587, smtps=465, imap=143, imaps=993)


class LocalRelay:
    """Everything a chatmail relay runs, under one state directory on loopback."""

    def __init__(
        self,
        root: Path,
        *,
        domain: str = "chat.localhost",
        ports: Ports | None = None,
        config_sections: dict[str, dict[str, object]] | None = None,
        milter: bool = True,
        postfix_settings: dict[str, str] | None = None,
        address: str = "127.0.0.1",
        nameserver: tuple[str, int] | None = None,
        ca: TestCA | None = None,
        web: bool = False,
        web_ports: tuple[int, int] | None = None,
    ) -> None:
        """`address`: the loopback address of all its servers (not 127.0.0.1: standard ports
        unless `ports` says otherwise); `nameserver`: (ip, 53) of the test DNS server that
        Postfix and the milter ask; `ca`: issues the relay's certificate, and outgoing TLS
        trusts it (instead of the system's CAs); `web_ports`: nginx's (http, https) ports;
        `web`: chatmail-web and the pages behind
        nginx (`self.web`, on free ports: a system nginx on *:80 and *:443 stays alone; the
        `dclogin_url` of its /new names IMAP 993 and SMTP 465, so use it with the standard
        ports)."""
        if nameserver is not None and nameserver[1] != 53:
            raise ValueError("Postfix's resolver asks port 53 only")
        if ports is None:
            ports = Ports() if address == "127.0.0.1" else STANDARD_PORTS
        self.root = Path(root)
        self.address = address
        (self.root / "run").mkdir(parents=True, exist_ok=True)
        self.root.joinpath("run").chmod(0o755)
        self.auth_socket = self.root / "run" / "auth.sock"
        self.metadata_socket = self.root / "run" / "metadata.sock"
        self.mxdeliv_socket = self.root / "run" / "mxdeliv.sock"
        sections: dict[str, dict[str, object]] = {
            "chatmail": {"mail_domain": domain},
            "auth": {"socket": self.auth_socket},
            "dkim": {"key_file": self.root / "dkim" / "chatmail.private"},
            "dns": {"ipv4": address},  # the A record chatmail-dns prints
            "metadata": {"socket": self.metadata_socket},
            "federation": {
                "socket": self.mxdeliv_socket,
                # chatmail-mxsend: its LMTP socket and Postfix's hand-back socket in this
                # relay's queue directory, Postfix's TLS policy table, the test CA's roots
                "send_socket": self.root / "postfix" / "queue" / "chatmail" / "mxsend.sock",
                "return_socket": self.root / "postfix" / "queue" / "public" / "mxreturn",
                "tls_policy": self.root / "postfix" / "tls_policy",
                "ca_file": ca.cert if ca else "",
            },
        }
        # every port known now: /new names the IMAP and SMTP ones in its dclogin_url
        ports = Ports(
            **{
                name: getattr(ports, name) or free_port(address)
                for name in ("smtp", "submission", "smtps", "imap", "imaps")
            }
        )
        if web:  # without a CA the certificate is self-signed: /new adds a dclogin_url
            sections["web"] = {
                "login_host": address,
                "login_imaps_port": ports.imaps,
                "login_smtps_port": ports.smtps,
            }
            sections["tls"] = {"self_signed": "no" if ca else "yes"}
        if nameserver is not None:
            sections["dkim"]["resolver"] = f"{nameserver[0]}:{nameserver[1]}"
        for name, values in (config_sections or {}).items():
            sections.setdefault(name, {}).update(values)
        self.config: Config = stack_config(self.root, **sections)
        self.config_path = Path(self.config.path)
        self.dkim_key = Path(self.config.dkim.key_file)
        if not self.dkim_key.exists():
            dkimkey.generate_key(self.dkim_key, owner=MAIL_USER)
        self.logs = self.root / "logs"
        self.logs.mkdir(exist_ok=True)
        tls = ca.issue(self.root, domain) if ca else None
        self.postfix = Postfix(
            self.root,
            self.config,
            milter_socket=Path(self.config.milter.socket) if milter else None,
            smtp_port=ports.smtp,
            submission_port=ports.submission,
            smtps_port=ports.smtps,
            settings=postfix_settings,
            address=address,
            nameserver=nameserver[0] if nameserver else None,
            tls=tls,
            tls_ca_file=ca.cert if ca else SYSTEM_CA_FILE,
        )
        self.dovecot = Dovecot(
            self.root,
            self.config,
            auth_socket=self.auth_socket,
            metadata_socket=self.metadata_socket,
            lmtp_socket=self.postfix.lmtp_socket,
            sasl_socket=self.postfix.sasl_socket,
            imap_port=ports.imap,
            imaps_port=ports.imaps,
            address=address,
            tls=tls,
        )
        self._socket_paths = {
            "/run/chatmail/auth.sock": self.auth_socket,
            "/run/chatmail/metadata.sock": self.metadata_socket,
            "/var/spool/postfix/chatmail/milter.sock": Path(self.config.milter.socket),
            "/run/chatmail/mxdeliv.sock": self.mxdeliv_socket,
            "/var/spool/postfix/chatmail/mxsend.sock": Path(self.config.federation.send_socket),
        }
        self.auth = self._service("chatmail-auth")
        self.metadata = self._service("chatmail-metadata")
        self.milter = self._service("chatmail-milter") if milter else None
        # remote mail over HTTPS first (Postfix's default_transport when it names mxsend)
        self.mxsend = self._service("chatmail-mxsend")
        self.web: WebFront | None = None
        # mail from other relays over HTTPS: nginx's /mxdeliv (with the web face only)
        self.mxdeliv = self._service("chatmail-mxdeliv") if web else None
        if web:
            self.web = WebFront(
                self.root,
                self.config,
                address=address,
                tls=tls or self_signed_cert(self.root, domain),
                http_port=web_ports[0] if web_ports else free_port(address),
                https_port=web_ports[1] if web_ports else free_port(address),
                imaps_port=ports.imaps,
                smtps_port=ports.smtps,
            )

    @property
    def domain(self) -> str:
        return self.config.chatmail.mail_domain

    def dkim_record(self) -> tuple[str, str]:
        """(name, TXT value) of the relay's DKIM key, as `chatmail-dns` prints it."""
        record = dkim_record(self.config, dkimkey.public_key_b64(self.config.dkim.key_file))
        return record.name, record.value

    def zone_text(self) -> str:
        """The relay's DNS records exactly as `chatmail-dns` prints them from its config."""
        result = subprocess.run(
            [str(VENV_BIN / "chatmail-dns"), "--config", str(self.config_path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if result.returncode != 0:
            raise RuntimeError(f"chatmail-dns failed: {result.stderr}")
        return result.stdout

    # -- services as their units describe them --

    def _env(self) -> dict[str, str]:
        return {"CHATMAIL_CONFIG": str(self.config_path)}

    def _service(self, name: str) -> ActivatedService:
        """A socket-activated service as systemd-units/<name>.{socket,service} describe it."""
        socket_unit = read_unit(UNITS_DIR / f"{name}.socket")
        service_unit = read_unit(UNITS_DIR / f"{name}.service")
        listen = unit_value(socket_unit, "Socket", "ListenStream")
        if listen not in self._socket_paths:
            raise ValueError(
                f"{name}.socket listens on {listen}, which the local relay does not map"
            )
        return ActivatedService(
            exec_start(service_unit, VENV_BIN),
            self._socket_paths[listen],
            log_path=self.logs / f"{name}.log",
            mode=int(unit_value(socket_unit, "Socket", "SocketMode") or "0666", 8),
            user=self._user(unit_value(service_unit, "Service", "User")),
            socket_user=self._user(unit_value(socket_unit, "Socket", "SocketUser")),
            group=self._user(unit_value(socket_unit, "Socket", "SocketGroup")),
            env=self._env(),
            cwd=self.root,
            groups=tuple(
                " ".join(service_unit.get("Service", {}).get("SupplementaryGroups", [])).split()
            ),
        )

    def stop_milter(self) -> None:
        """Stop the milter and its socket (`systemctl stop chatmail-milter.socket ...`)."""
        if self.milter:
            self.milter.close()
            self.milter = None

    def start_milter(self) -> None:
        """Bring the milter's socket and service back."""
        if not self.milter:
            self.milter = self._service("chatmail-milter").start()

    @staticmethod
    def _user(name: str | None) -> str | None:
        if name == PRODUCTION_MAIL_USER:
            return MAIL_USER
        return name

    def expire(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the reaper as chatmail-expire.service would (extra args appended)."""
        unit = read_unit(UNITS_DIR / "chatmail-expire.service")
        argv = [*exec_start(unit, VENV_BIN), *args]
        user = self._user(unit_value(unit, "Service", "User")) or MAIL_USER
        return subprocess.run(
            ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--", *argv],
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, **self._env()},
            cwd=self.root,
        )

    def new_credentials(self) -> dict[str, str]:
        """A fresh address and password, as `chatmail-auth new-credentials` prints them."""
        result = subprocess.run(
            [str(VENV_BIN / "chatmail-auth"), "new-credentials"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
            env={**os.environ, **self._env()},
        )
        return json.loads(result.stdout)

    # -- lifecycle --

    def start(self) -> LocalRelay:
        try:
            self.auth.start()
            self.metadata.start()
            if self.milter:
                self.milter.start()
            if self.mxdeliv:
                self.mxdeliv.start()
            self.mxsend.start()
            self.dovecot.start()
            self.postfix.start()
            if self.web:
                self.web.start()
            wait_for_unix(self.auth_socket)
            wait_for_unix(self.metadata_socket)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        # Postfix, Dovecot (and nginx) each take up to a second to wind down: side by side.
        stops = [self.postfix.stop, self.dovecot.stop] + ([self.web.stop] if self.web else [])
        with concurrent.futures.ThreadPoolExecutor(len(stops)) as pool:
            for future in [pool.submit(stop) for stop in stops]:
                with contextlib.suppress(Exception):  # keep stopping the rest
                    future.result()
        for service in (self.mxsend, self.mxdeliv, self.milter, self.metadata, self.auth):
            if service:
                service.close()

    def service_logs(self) -> str:
        """The log output of our services (not Postfix's or Dovecot's)."""
        return "".join(path.read_text(errors="replace") for path in sorted(self.logs.glob("*.log")))

    def deltachat_transport(self, addr: str, password: str) -> dict[str, object]:
        """Parameters for deltachat-rpc-client's add_or_update_transport."""
        return {
            "addr": addr,
            "password": password,
            "imapServer": self.address,
            "imapPort": self.dovecot.imaps_port,
            "imapSecurity": "ssl",
            "smtpServer": self.address,
            "smtpPort": self.postfix.smtps_port,
            "smtpSecurity": "ssl",
            "certificateChecks": "acceptInvalidCertificates",
        }

    def dclogin_uri(self, addr: str, password: str) -> str:
        """A `dclogin:` URI (Delta Chat's login QR) for the relay's loopback servers."""
        query = urllib.parse.urlencode(
            {
                "p": password,
                "v": "1",
                "ih": self.address,
                "ip": self.dovecot.imaps_port,
                "is": "ssl",
                "sh": self.address,
                "sp": self.postfix.smtps_port,
                "ss": "ssl",
                "ic": "3",  # accept the self-signed certificate
            }
        )
        return f"dclogin:{addr}?{query}"

    def describe(self) -> str:
        """How a client connects, for people."""
        domain, host = self.domain, self.address
        imap, smtp = self.dovecot, self.postfix
        return "\n".join(
            [
                f"chatmail relay for {domain} is up (state in {self.root})",
                f"  IMAP  {host}:{imap.imaps_port} (TLS), {host}:{imap.imap_port} (STARTTLS)",
                f"  SMTP  {host}:{smtp.smtps_port} (TLS), {host}:{smtp.submission_port} "
                f"(STARTTLS), incoming {host}:{smtp.smtp_port}",
            ]
        )

    def __enter__(self) -> LocalRelay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
