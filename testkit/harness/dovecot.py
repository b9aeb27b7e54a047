"""A private Dovecot 2.3 instance on loopback, configured from the templatesdovecot/."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from chatmail_services.config import Config
from chatmail_services.mailconfig import dovecot_values, server_admin

from . import MAIL_USER, TEMPLATES, VENV_BIN, mail_ids, read_logs
from .net import free_port, process_running, wait_for_tcp, wait_for_unix
from .render import render, render_text
from .tls import self_signed_cert

_PASSWD_FILE_AUTH = """
# test-only: a plain passwd-file instead of chatmail-auth (SASL-only tests)
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%Lu {passwd_file}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={mailboxes_dir}/%Lu
}}
"""


class Dovecot:
    """Dovecot with passdb/userdb from chatmail-auth (auth_socket) or a passwd-file."""

    def __init__(
        self,
        root: Path,
        config: Config,
        *,
        auth_socket: Path | None = None,
        metadata_socket: Path | None = None,
        passwd_file: Path | None = None,
        lmtp_socket: Path | None = None,
        sasl_socket: Path | None = None,
        imap_port: int | None = None,
        imaps_port: int | None = None,
        address: str = "127.0.0.1",
        tls: tuple[Path, Path] | None = None,
        auth: str = "dict",
    ) -> None:
        """`address`: the loopback address IMAP listens on; `tls`: (cert, key), by default a
        self-signed certificate for the mail domain; `auth`: how Dovecot asks chatmail-auth,
        "dict" (the dict passdb/userdb) or "lua" (chatmail-auth.lua, the Dovecot 2.4 way)."""
        if auth not in ("dict", "lua"):
            raise ValueError(f"auth is 'dict' or 'lua', not {auth!r}")
        if (auth_socket is None) == (passwd_file is None):
            raise ValueError("give exactly one of auth_socket and passwd_file")
        if not address.startswith("127."):
            raise ValueError(f"test servers listen on loopback only, not {address}")
        self.root = Path(root)
        self.address = address
        self._tls = tls
        self.config = config
        self.auth = auth
        self.auth_socket = auth_socket
        self.passwd_file = passwd_file
        self.metadata_socket = metadata_socket
        self.dir = self.root / "dovecot"
        self.base_dir = self.dir / "run"
        self.lmtp_socket = lmtp_socket or self.dir / "lmtp"
        self.sasl_socket = sasl_socket or self.dir / "auth"
        self.imap_port = imap_port or free_port(address)
        self.imaps_port = imaps_port or free_port(address)
        self.log_path = self.dir / "dovecot.log"
        self.conf = self.dir / "dovecot.conf"
        self._write_config()

    def _write_config(self) -> None:
        for directory in (self.dir, self.base_dir, self.dir / "state"):
            directory.mkdir(parents=True, exist_ok=True)
        domain = self.config.chatmail.mail_domain
        cert, key = self._tls or self_signed_cert(self.root, domain)
        uid, gid = mail_ids()
        dict_conf = self.dir / "chatmail-auth.conf.ext"
        values = {
            "listen": self.address,
            "base_dir": self.base_dir,
            "state_dir": self.dir / "state",
            "log_path": self.log_path,
            "tls_cert": cert,
            "tls_key": key,
            "mailboxes_dir": self.config.chatmail.mailboxes_dir,
            "mail_uid": uid,
            "mail_gid": gid,
            "mail_user": MAIL_USER,
            "server_admin": server_admin(self.config),
            **dovecot_values(self.config),
            "auth_dict_conf": dict_conf,
            "auth_lua": self.dir / "chatmail-auth.lua",
            "auth_socket": self.auth_socket or self.dir / "no-auth-socket",
            "metadata_socket": self.metadata_socket or self.dir / "no-metadata-socket",
            "push_lua": self.dir / "push_notification.lua",
            "expire_command": VENV_BIN / "chatmail-expire",
            "chatmail_config": self.config.path,
            "imap_port": self.imap_port,
            "imaps_port": self.imaps_port,
            "lmtp_socket": self.lmtp_socket,
            "sasl_socket": self.sasl_socket,
        }
        render("dovecot/chatmail-auth.conf.ext", values, dict_conf)
        shutil.copy(TEMPLATES / "dovecot" / "push_notification.lua", self.dir)
        text = render_text((TEMPLATES / "dovecot" / "dovecot.conf").read_text(), values)
        if self.auth == "lua":
            render("dovecot/chatmail-auth.lua", values, self.dir / "chatmail-auth.lua")
            lua_conf = render("dovecot/chatmail-auth-lua.conf.ext", values, self.dir / "lua.ext")
            start = text.index("passdb {")
            end = text.index("}\n", text.index("userdb {", start)) + 2
            text = text[:start] + f"!include {lua_conf}\n" + text[end:]
        if self.passwd_file:
            start = text.index("passdb {")
            end = text.index("protocol imap {")
            text = (
                text[:start]
                + _PASSWD_FILE_AUTH.format(
                    passwd_file=self.passwd_file,
                    uid=uid,
                    gid=gid,
                    mailboxes_dir=self.config.chatmail.mailboxes_dir,
                )
                + "\n"
                + text[end:]
            )
            text = text.replace(" last_login\n", "\n")
        if self.metadata_socket is None:
            # no chatmail-metadata here: no push hook that would fail on every delivery
            text = text.replace(" mail_lua notify push_notification push_notification_lua", "")
            text = "\n".join(
                line for line in text.split("\n") if "push_notification_driver" not in line
            )
        self.conf.write_text(text)

    def start(self) -> Dovecot:
        for socket_path in (self.lmtp_socket, self.sasl_socket):
            socket_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.dir / "stdout.log", "ab") as out:
            result = subprocess.run(
                ["dovecot", "-c", str(self.conf)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                timeout=30,
            )
        if result.returncode != 0:
            raise RuntimeError(f"dovecot failed to start:\n{self.output()}")
        wait_for_tcp(self.imap_port, host=self.address)
        wait_for_tcp(self.imaps_port, host=self.address)
        wait_for_unix(self.lmtp_socket)
        return self

    def stop(self) -> None:
        pid_file = self.base_dir / "master.pid"
        if not pid_file.exists():
            return
        # SIGTERM to the master, as `dovecot stop` sends it; but `dovecot stop` then waits
        # until the master's zombie is reaped, which this machine's init does a second late.
        try:
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, signal.SIGTERM)
        except (FileNotFoundError, ValueError, IndexError, ProcessLookupError):
            return
        deadline = time.monotonic() + 10
        while process_running(pid) and time.monotonic() < deadline:
            time.sleep(0.02)

    def doveadm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run doveadm against this instance."""
        return subprocess.run(
            ["doveadm", "-c", str(self.conf), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=check,
        )

    def output(self) -> str:
        return read_logs(self.dir / "stdout.log", self.log_path)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> Dovecot:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
