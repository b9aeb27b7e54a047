"""A private Postfix instance on loopback, configured from docs/templates/postfix/."""

from __future__ import annotations

import json
import os
import pty
import pwd
import shutil
import subprocess
import time
from pathlib import Path

from chatmail_services.config import Config

from . import TEMPLATES
from .net import free_port, wait_for_tcp
from .render import (
    POSTFIX_COPIED,
    POSTFIX_RENDERED,
    SYSTEM_CA_FILE,
    postfix_values,
    render,
    render_text,
)
from .tls import self_signed_cert

# Instance settings of a private, unprivileged test Postfix: not part of the chatmail wiring.
_INSTANCE = """
# --- local instance (harness) ---
queue_directory = {queue}
data_directory = {data}
maillog_file = {log}
maillog_file_prefixes = {log_dir}
inet_interfaces = 127.0.0.1
mynetworks = 127.0.0.0/8
smtp_host_lookup = native
lmtp_host_lookup = native
default_destination_concurrency_limit = 20
in_flow_delay = 0
"""


class Postfix:
    """Postfix with the chatmail wiring; milter and Dovecot (LMTP, SASL) are optional."""

    def __init__(
        self,
        root: Path,
        config: Config,
        *,
        milter_socket: Path | None = None,
        dovecot: object | None = None,
        discard: bool = False,
        smtp_port: int | None = None,
        submission_port: int | None = None,
        smtps_port: int | None = None,
        settings: dict[str, str] | None = None,
        tls_ca_file: str = SYSTEM_CA_FILE,
        address: str = "127.0.0.1",
    ) -> None:
        self.root = Path(root)
        self.address = address  # the loopback address master.cf's listeners bind
        self.tls_ca_file = tls_ca_file
        self.config = config
        self.dovecot = dovecot
        self.dir = self.root / "postfix"
        self.queue = self.dir / "queue"
        self.log_path = self.dir / "maillog"
        self.smtp_port = smtp_port or free_port()
        self.submission_port = submission_port or free_port()
        self.smtps_port = smtps_port or free_port()
        # Our sockets inside the queue directory, where the templates' relative paths point.
        self.milter_socket = self.queue / "chatmail" / "milter.sock"
        self.lmtp_socket = self.queue / "private" / "dovecot-lmtp"
        self.sasl_socket = self.queue / "private" / "auth"
        self._external_milter = milter_socket
        self._settings = settings or {}
        self._write_config(discard)

    def _write_config(self, discard: bool) -> None:
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        postfix_user = pwd.getpwnam("postfix")
        os.chown(self.dir / "data", postfix_user.pw_uid, postfix_user.pw_gid)
        self.queue.mkdir(parents=True, exist_ok=True)
        cert, key = self_signed_cert(self.root, self.config.chatmail.mail_domain)
        values = {
            **postfix_values(self.config),
            "inet_protocols": "ipv4",
            "tls_ca_file": self.tls_ca_file,
            "tls_cert": cert,
            "tls_key": key,
            "config_dir": self.dir,
            "smtp_listen": f"{self.address}:{self.smtp_port}",
            "submission_listen": f"{self.address}:{self.submission_port}",
            "smtps_listen": f"{self.address}:{self.smtps_port}",
            "chroot": "n",
        }
        main = render_text((TEMPLATES / "postfix" / "main.cf").read_text(), values)
        main += _INSTANCE.format(
            queue=self.queue,
            data=self.dir / "data",
            log=self.log_path,
            log_dir=self.dir,
        )
        if self._external_milter is None:
            main = main.replace("smtpd_milters = unix:chatmail/milter.sock", "smtpd_milters =")
        if discard:
            main += "virtual_transport = discard:\n"
        main += "".join(f"{key} = {value}\n" for key, value in self._settings.items())
        (self.dir / "main.cf").write_text(main)
        for name in POSTFIX_RENDERED[1:]:
            render(f"postfix/{name}", values, self.dir / name)
        for name in POSTFIX_COPIED:
            shutil.copy(TEMPLATES / "postfix" / name, self.dir / name)
        # `postfix check` creates the queue directories (private/ among them) with the right
        # owners: done now, so Dovecot can put its LMTP and SASL sockets there before start().
        check = self._postfix("check")
        if check.returncode != 0:
            raise RuntimeError(f"postfix check failed:\n{check.stdout}\n{self.log_text()}")

    def _postfix(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run `postfix -c DIR ...` under a pty: it reports some failures only to a terminal."""
        command = ["postfix", "-c", str(self.dir), *args]
        out_fd, in_fd = pty.openpty()
        try:
            proc = subprocess.run(command, stdin=in_fd, stdout=in_fd, stderr=in_fd, timeout=60)
            os.close(in_fd)
            chunks = []
            while True:
                try:
                    data = os.read(out_fd, 65536)
                except OSError:
                    break
                if not data:
                    break
                chunks.append(data)
        finally:
            os.close(out_fd)
        return subprocess.CompletedProcess(
            command, proc.returncode, b"".join(chunks).decode(errors="replace"), ""
        )

    def start(self) -> Postfix:
        if self._external_milter is not None:
            self._link_milter_socket()
        if self.dovecot is not None:
            self._link_socket(self.dovecot.lmtp_socket, self.lmtp_socket)
            self._link_socket(self.dovecot.sasl_socket, self.sasl_socket)
        start = self._postfix("start")
        if start.returncode != 0:
            raise RuntimeError(f"postfix start failed:\n{start.stdout}\n{self.log_text()}")
        for port in (self.smtp_port, self.submission_port, self.smtps_port):
            wait_for_tcp(port, host=self.address)
        return self

    def _link_milter_socket(self) -> None:
        self.milter_socket.parent.mkdir(exist_ok=True)
        if Path(self._external_milter) != self.milter_socket:
            self._link_socket(Path(self._external_milter), self.milter_socket)

    @staticmethod
    def _link_socket(source: Path, target: Path) -> None:
        """Make a socket living elsewhere reachable at the path the templates name."""
        if Path(source) == target:
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink() or target.exists():
            target.unlink()
        target.symlink_to(source)

    def stop(self) -> None:
        pid_file = self.queue / "pid" / "master.pid"
        if pid_file.exists():
            self._postfix("stop")
            deadline = time.monotonic() + 10
            # master leaves its pid file behind: wait for the process, not the file
            while self._master_alive(pid_file) and time.monotonic() < deadline:
                time.sleep(0.05)

    @staticmethod
    def _master_alive(pid_file: Path) -> bool:
        try:
            pid = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def queue_ids(self) -> list[str]:
        """Queue ids of the messages still in the queue."""
        result = subprocess.run(
            ["postqueue", "-c", str(self.dir), "-j"], capture_output=True, text=True, timeout=30
        )
        return [json.loads(line)["queue_id"] for line in result.stdout.splitlines() if line.strip()]

    def flush(self) -> None:
        subprocess.run(["postqueue", "-c", str(self.dir), "-f"], capture_output=True, timeout=30)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> Postfix:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
