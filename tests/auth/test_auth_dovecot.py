"""chatmail-auth behind real Dovecot 2.3 (wired as in mail-stack.md): IMAP logins end to end."""

from __future__ import annotations

import imaplib
import os
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from chatmail_services.authsocket.hashing import verify_password
from harness import MAIL_USER, mail_ids
from harness.activation import ActivatedService
from harness.authtools import start_auth
from harness.dovecot import Dovecot
from harness.fixtures import stack_config

from chatmail_services import layout

pytestmark = pytest.mark.stack

USER = "firstlog1@chat.example"
OTHER = "otherlog1@chat.example"
PASSWORD = "pass'wo\"rd\\1/x"


@pytest.fixture
def stack(stack_root: Path) -> Iterator[tuple[Dovecot, ActivatedService, Path]]:
    """Dovecot plus chatmail-auth running as the mail user, socket-activated.

    The socket belongs to the mail user (as SocketUser= does), so Dovecot's auth-worker and
    imap processes, running as that user, can connect.
    """
    config = stack_config(stack_root)
    run = stack_root / "run"
    run.mkdir()
    os.chown(run, *mail_ids())
    auth = start_auth(config, run, user=MAIL_USER)
    dovecot = Dovecot(stack_root, config, auth_socket=auth.socket_path)
    try:
        with dovecot:
            try:
                yield dovecot, auth, Path(config.chatmail.mailboxes_dir)
            finally:
                print(dovecot.log_text(), auth.log_text())  # shown when a test fails
    finally:
        status = auth.close()
    log = auth.log_text()
    assert status == 0 and "Traceback" not in log and "ERROR" not in log, log


def imap_login(dovecot: Dovecot, user: str, password: str) -> imaplib.IMAP4_SSL:
    imap = imaplib.IMAP4_SSL(
        "127.0.0.1", dovecot.imaps_port, ssl_context=ssl._create_unverified_context(), timeout=30
    )
    imap.login(user, password)
    return imap


def test_first_login_creates_then_works_and_wrong_password_fails(stack):
    dovecot, _auth, mailboxes = stack
    home = mailboxes / USER
    imap = imap_login(dovecot, USER, PASSWORD)
    assert imap.select("INBOX")[0] == "OK"  # Dovecot made its Maildir inside our home
    imap.logout()
    stored = (home / "password").read_text().strip()
    assert verify_password(PASSWORD.encode(), stored)
    assert (home / "enforceE2EEincoming").exists()
    assert (home / "cur").is_dir()
    assert (home.stat().st_uid, home.stat().st_gid) == mail_ids()
    # second login
    imap_login(dovecot, USER, PASSWORD).logout()
    # wrong password: refused, nothing changes
    os.utime(home / "password", (86400, 86400))
    before = {p.name: p.read_bytes() for p in home.iterdir() if p.is_file()}
    with pytest.raises(imaplib.IMAP4.error):
        imap_login(dovecot, USER, "wrong-password-x")
    assert {p.name: p.read_bytes() for p in home.iterdir() if p.is_file()} == before
    assert (home / "password").stat().st_mtime == 86400
    # an address that may not exist (local part too short) gets nothing
    with pytest.raises(imaplib.IMAP4.error):
        imap_login(dovecot, "short@chat.example", PASSWORD)
    assert not (mailboxes / "short@chat.example").exists()


def test_doveadm_lists_accounts_and_sees_the_quota(stack):
    dovecot, _auth, _mailboxes = stack
    users = [f"listed{i:03d}@chat.example" for i in range(3)]
    for user in users:
        imap_login(dovecot, user, PASSWORD).logout()
    # Dovecot 2.3's `doveadm user` has no -A: `user '*'` iterates the userdb, and every
    # `-A` command (here `mailbox list -A`) runs over that same iteration
    assert sorted(dovecot.doveadm("user", "*").stdout.split()) == users
    listed = dovecot.doveadm("mailbox", "list", "-A").stdout.splitlines()
    assert sorted(listed) == [f"{user} INBOX" for user in users]
    info = dovecot.doveadm("user", users[0]).stdout
    assert "quota_rule" in info and "*:storage=512000" in info
    quota = dovecot.doveadm("quota", "get", "-u", users[0]).stdout
    assert "512000" in quota
    assert dovecot.doveadm("user", "nosuchone@chat.example", check=False).returncode != 0


def test_imap_login_updates_last_login(stack):
    dovecot, _auth, mailboxes = stack
    imap_login(dovecot, USER, PASSWORD).logout()
    password_file = mailboxes / USER / "password"
    os.utime(password_file, (86400 * 3, 86400 * 3))
    today = layout.day_start(time.time())
    # a failed login is not a login: after it, another account's login is recorded (the
    # last-login path works and has had its turn), and this one's time is unchanged
    with pytest.raises(imaplib.IMAP4.error):
        imap_login(dovecot, USER, "wrong-password-x")
    other_file = mailboxes / OTHER / "password"
    imap_login(dovecot, OTHER, PASSWORD).logout()
    os.utime(other_file, (86400 * 3, 86400 * 3))  # created just now: move it back
    imap_login(dovecot, OTHER, PASSWORD).logout()
    wait_for_mtime(other_file, today)
    assert password_file.stat().st_mtime == 86400 * 3
    imap_login(dovecot, USER, PASSWORD).logout()
    wait_for_mtime(password_file, today)


def wait_for_mtime(path: Path, mtime: float, timeout: float = 15) -> None:
    """Wait until `path` has the modification time `mtime` (a recorded last login)."""
    deadline = time.monotonic() + timeout
    while path.stat().st_mtime != mtime:
        assert time.monotonic() < deadline, f"last login was not recorded in {path}"
        time.sleep(0.1)
