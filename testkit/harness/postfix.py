"""A private Postfix instance on loopback, configured from chatmail_services/templates/postfix/."""

from __future__ import annotations

import json
import os
import pty
import pwd
import signal
import subprocess
import time
from pathlib import Path

from chatmail_services.config import Config
from chatmail_services.mailconfig import MXDELIV_SMTPD_HOST
from chatmail_services.templating import render_template

from . import TEMPLATES
from .net import free_port, process_running, wait_for_tcp
from .render import (
    POSTFIX_COPIED,
    POSTFIX_RENDERED,
    SYSTEM_CA_FILE,
    postfix_values,
    render_text,
)
from .tls import self_signed_cert

# Postfix's resolver (libresolv) reads /etc/resolv.conf and asks port 53 only; a relay that
# resolves through a test nameserver gets this file bind-mounted there in its own mount
# namespace (see run_postfix), so the machine's resolver stays untouched.
_RESOLV_CONF = "nameserver {nameserver}\noptions timeout:1 attempts:2\n"

# Instance settings of a private, unprivileged test Postfix: not part of the chatmail wiring.
_INSTANCE = """
# --- local instance (harness) ---
queue_directory = {queue}
data_directory = {data}
maillog_file = {log}
maillog_file_prefixes = {log_dir}
# The machine's only loopback interface address: Postfix refuses other addresses here. The
# listeners in master.cf name their address (any in 127.0.0.0/8); the client sends from it.
inet_interfaces = 127.0.0.1
smtp_bind_address = {address}
mynetworks = {mynetworks}
smtp_host_lookup = {host_lookup}
lmtp_host_lookup = native
default_destination_concurrency_limit = 20
in_flow_delay = 0
"""


def run_postfix(
    conf_dir: Path, *args: str, resolv_conf: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `postfix -c DIR ...` under a pty: it reports some failures only to a terminal.

    resolv_conf: run it in a new mount namespace where this file is bind-mounted over
    /etc/resolv.conf; the master daemon and every process it starts stay in that namespace, so
    only this instance resolves through it (the machine's resolver is never changed).
    """
    command = ["postfix", "-c", str(conf_dir), *args]
    if resolv_conf is not None:
        command = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            'mount --bind "$0" /etc/resolv.conf && exec "$@"',
            str(resolv_conf),
            *command,
        ]
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


def stop_postfix(conf_dir: Path, queue_dir: Path, timeout: float = 10.0) -> None:
    """`postfix stop`, then wait until the master process is gone (it leaves its pid file)."""
    pid_file = queue_dir / "pid" / "master.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return
    try:
        os.kill(pid, signal.SIGTERM)  # what `postfix stop` does, without its shell script
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process_running(pid):
        time.sleep(0.02)


def queue_ids(conf_dir: Path) -> list[str]:
    """Queue ids of the messages in the queue of the instance configured in conf_dir."""
    result = subprocess.run(
        ["postqueue", "-c", str(conf_dir), "-j"], capture_output=True, text=True, timeout=30
    )
    return [json.loads(line)["queue_id"] for line in result.stdout.splitlines() if line.strip()]


def flush(conf_dir: Path) -> None:
    """Attempt delivery of every queued message now (`postqueue -f`)."""
    subprocess.run(["postqueue", "-c", str(conf_dir), "-f"], capture_output=True, timeout=30)


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
        tls_ca_file: str | Path = SYSTEM_CA_FILE,
        tls: tuple[Path, Path] | None = None,
        address: str = "127.0.0.1",
        nameserver: str | None = None,
    ) -> None:
        """`address`: the loopback address Postfix listens on and sends from; `nameserver`:
        resolve MX and A records through this address (port 53) instead of the system's
        resolver (Postfix then runs in a private mount namespace); `tls`: (cert, key), by
        default a self-signed certificate for the mail domain."""
        if not address.startswith("127."):
            raise ValueError(f"test servers listen on loopback only, not {address}")
        self.root = Path(root)
        self.address = address
        self.nameserver = nameserver
        self.tls_ca_file = tls_ca_file
        self._tls = tls
        self.config = config
        self.dovecot = dovecot
        self.dir = self.root / "postfix"
        self.queue = self.dir / "queue"
        self.log_path = self.dir / "maillog"
        self.smtp_port = smtp_port or free_port(address)
        self.submission_port = submission_port or free_port(address)
        self.smtps_port = smtps_port or free_port(address)
        self.resolv_conf = self.dir / "resolv.conf"
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
        cert, key = self._tls or self_signed_cert(self.root, self.config.chatmail.mail_domain)
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
            address=self.address,
            # The single relay keeps its historic 127.0.0.0/8; relays on their own address
            # trust only themselves, as a production relay does (mynetworks_style = host).
            mynetworks="127.0.0.0/8" if self.address == "127.0.0.1" else f"{self.address}/32",
            host_lookup="dns" if self.nameserver else "native",
        )
        if self.nameserver:
            self.resolv_conf.write_text(_RESOLV_CONF.format(nameserver=self.nameserver))
        if self._external_milter is None:
            main = main.replace("smtpd_milters = unix:chatmail/milter.sock", "smtpd_milters =")
        if discard:
            main += "virtual_transport = discard:\n"
        main += "".join(f"{key} = {value}\n" for key, value in self._settings.items())
        files = {"main.cf": main}
        for name in POSTFIX_RENDERED[1:]:
            files[name] = render_template(f"postfix/{name}", values)
        files.update((name, (TEMPLATES / "postfix" / name).read_text()) for name in POSTFIX_COPIED)
        unchanged = (self.queue / "private").is_dir() and all(
            (self.dir / name).is_file() and (self.dir / name).read_text() == text
            for name, text in files.items()
        )
        # Postfix waits until main.cf is a couple of seconds old before it reads it (an admin
        # may still be editing): the files are complete, so they are written dated back.
        past = time.time() - 10
        for name, text in files.items():
            (self.dir / name).write_text(text)
            os.utime(self.dir / name, (past, past))
        # `postfix check` creates the queue directories (private/ among them) with the right
        # owners: done now, so Dovecot can put its LMTP and SASL sockets there before start().
        # An instance whose configuration did not change since its last check (the local
        # relay's second start) skips it; `quick-start` tells `postfix start` the check is done.
        if not unchanged:
            check = self._postfix("check")
            if check.returncode != 0:
                raise RuntimeError(f"postfix check failed:\n{check.stdout}\n{self.log_text()}")
        (self.queue / "quick-start").touch()

    def _postfix(self, *args: str, own_resolver: bool = False) -> subprocess.CompletedProcess[str]:
        return run_postfix(self.dir, *args, resolv_conf=self.resolv_conf if own_resolver else None)

    def start(self) -> Postfix:
        if self._external_milter is not None:
            self._link_milter_socket()
        if self.dovecot is not None:
            self._link_socket(self.dovecot.lmtp_socket, self.lmtp_socket)
            self._link_socket(self.dovecot.sasl_socket, self.sasl_socket)
        start = self._postfix("start", own_resolver=self.nameserver is not None)
        if start.returncode != 0:
            raise RuntimeError(f"postfix start failed:\n{start.stdout}\n{self.log_text()}")
        for port in (self.smtp_port, self.submission_port, self.smtps_port):
            wait_for_tcp(port, host=self.address)
        wait_for_tcp(self.config.federation.smtpd_port, host=MXDELIV_SMTPD_HOST)
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
        stop_postfix(self.dir, self.queue)

    def queue_ids(self) -> list[str]:
        """Queue ids of the messages still in the queue."""
        return queue_ids(self.dir)

    def flush(self) -> None:
        flush(self.dir)

    def delete(self, queue_id: str) -> None:
        """Remove a message from the queue (`postsuper -d`)."""
        subprocess.run(
            ["postsuper", "-c", str(self.dir), "-d", queue_id], capture_output=True, timeout=30
        )

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> Postfix:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
