"""Real Postfix (the templates) with the real milter as its unit runs it, Dovecot for SASL
and LMTP delivery (a passwd-file, no chatmail-auth), and three accounts: the milter tests'
stack (tests/milter/test_milter_postfix.py, test_milter_dkim_postfix.py)."""

from __future__ import annotations

import os
import smtplib
import ssl
import time
from pathlib import Path

from chatmail_services.layout import ENFORCE_E2EE_MARKER

from . import MAIL_USER, VENV_BIN, mail_ids
from .activation import ActivatedService
from .dovecot import Dovecot
from .fixtures import stack_config
from .messages import ALICE, BOB, DOMAIN
from .postfix import Postfix

CAROL = f"carol1234@{DOMAIN}"  # switched incoming enforcement off: cleartext may reach her
PASSWORD = "password-of-test"


class MilterStack:
    """The daemons under `root`; `sections` override the test config (e.g. `dkim={...}`)."""

    def __init__(self, root: Path, **sections: dict[str, object]) -> None:
        self.root = root
        self.config = stack_config(root, **sections)
        self.mailboxes = Path(self.config.chatmail.mailboxes_dir)
        uid, gid = mail_ids()
        for address in (ALICE, BOB, CAROL):
            home = self.mailboxes / address
            home.mkdir()
            if address != CAROL:
                (home / ENFORCE_E2EE_MARKER).touch()
            for path in (home, *home.iterdir()):
                os.chown(path, uid, gid)
        passwd = root / "passwd"
        passwd.write_text("".join(f"{a}:{{PLAIN}}{PASSWORD}\n" for a in (ALICE, BOB, CAROL)))
        self.socket = Path(self.config.milter.socket)
        self.postfix = Postfix(root, self.config, milter_socket=self.socket)
        self.dovecot = Dovecot(
            root,
            self.config,
            passwd_file=passwd,
            lmtp_socket=self.postfix.lmtp_socket,
            sasl_socket=self.postfix.sasl_socket,
        )
        self.milter_log = root / "milter.log"
        self.milter = self.new_milter()

    def new_milter(self) -> ActivatedService:
        """The service as systemd-units/chatmail-milter.{socket,service} describe it."""
        return ActivatedService(
            [str(VENV_BIN / "chatmail-milter"), "serve"],
            self.socket,
            log_path=self.milter_log,
            mode=0o660,
            user=MAIL_USER,
            socket_user=MAIL_USER,
            group="postfix",
            env={"CHATMAIL_CONFIG": self.config.path},
            cwd=self.root,
        )

    def count(self, address: str) -> int:
        """Messages in the account's new/ folder."""
        return len(list((self.mailboxes / address / "new").glob("*")))

    def delivered(self, address: str, count: int, timeout: float = 30) -> list[bytes]:
        """The account's first `count` new messages (oldest first), waiting for them."""
        new = self.mailboxes / address / "new"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            files = sorted(new.glob("*"), key=lambda p: p.stat().st_mtime) if new.is_dir() else []
            if len(files) >= count:
                return [f.read_bytes() for f in files]
            time.sleep(0.1)
        raise AssertionError(
            f"{address}: fewer than {count} messages\n"
            f"{self.postfix.log_text()[-3000:]}\n{self.log()}"
        )

    def log(self) -> str:
        """What the milter logged."""
        return self.milter_log.read_text(errors="replace") if self.milter_log.exists() else ""

    def submit(self, sender: str, rcpts: list[str], data: bytes) -> None:
        """Submit on port 587 with STARTTLS and the sender's login."""
        context = ssl._create_unverified_context()
        with smtplib.SMTP("127.0.0.1", self.postfix.submission_port, timeout=60) as smtp:
            smtp.starttls(context=context)
            smtp.login(sender, PASSWORD)
            smtp.sendmail(sender, rcpts, data)

    def deliver(self, sender: str, rcpts: list[str], data: bytes) -> None:
        """Deliver on port 25, as another mail server would."""
        with smtplib.SMTP("127.0.0.1", self.postfix.smtp_port, timeout=60) as smtp:
            smtp.sendmail(sender, rcpts, data)
