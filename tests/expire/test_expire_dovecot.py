"""The reaper against mailboxes real Dovecot created: IMAP and Dovecot's quota agree after it.

Dovecot (testkit/harness) with the real auth responder behind it, socket-activated as in
production, creates the accounts on first IMAP login and records logins; mail arrives over
LMTP and is read and moved over IMAP. Then `chatmail-expire --remove` runs as its unit says
(as the mail user), its clock moved days ahead by libfaketime: the files keep Dovecot's real
names and times.
"""

from __future__ import annotations

import imaplib
import os
import smtplib
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from harness import MAIL_USER, VENV_BIN, mail_ids
from harness.activation import ActivatedService
from harness.dovecot import Dovecot
from harness.fixtures import stack_config
from harness.units import UNITS_DIR, exec_start, read_unit

from chatmail_services.config import Config
from chatmail_services.layout import DAY, day_start

pytestmark = pytest.mark.stack

LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
PASSWORD = "secret-password"


@dataclass
class Relay:
    config: Config
    dovecot: Dovecot


@pytest.fixture
def live_relay(stack_root: Path) -> Iterator[Relay]:
    """Dovecot asking chatmail-auth (socket-activated, as the mail user) for accounts."""
    run_dir = stack_root / "run"
    run_dir.mkdir()
    os.chown(run_dir, *mail_ids())
    socket = run_dir / "auth.sock"
    config = stack_config(
        stack_root,
        chatmail={"mail_domain": "chat.example", "max_mailbox_size": "100K"},
        auth={"socket": socket, "mail_user": MAIL_USER},
        expire={"large_message_size": 20000},
    )
    auth = ActivatedService(
        [str(VENV_BIN / "chatmail-auth"), "serve"],
        socket,
        log_path=stack_root / "auth.log",
        user=MAIL_USER,
        env={"CHATMAIL_CONFIG": config.path},
        cwd=run_dir,
    )
    with auth, Dovecot(stack_root, config, auth_socket=socket) as dovecot:
        yield Relay(config, dovecot)


def message(rcpt: str, n: int, body_size: int) -> bytes:
    body = (("x" * 76 + "\r\n") * (body_size // 78 + 1))[:body_size]
    return (
        f"From: sender@elsewhere.example\r\nTo: {rcpt}\r\nSubject: {n}\r\n"
        f"Message-ID: <{n}.{rcpt}>\r\n\r\n{body}\r\n"
    ).encode()


def deliver(relay: Relay, rcpt: str, sizes: list[int]) -> None:
    """Deliver over LMTP to Dovecot, as Postfix does."""
    lmtp = smtplib.LMTP(str(relay.dovecot.lmtp_socket))
    try:
        for n, size in enumerate(sizes):
            lmtp.sendmail("sender@elsewhere.example", [rcpt], message(rcpt, n, size))
    finally:
        lmtp.quit()


def imap_login(relay: Relay, user: str) -> imaplib.IMAP4:
    imap = imaplib.IMAP4("127.0.0.1", relay.dovecot.imap_port)
    imap.starttls(ssl._create_unverified_context())
    imap.login(user, PASSWORD)
    return imap


def counts(relay: Relay, user: str) -> dict[str, int]:
    """Messages per existing folder, as IMAP SELECT reports them."""
    imap = imap_login(relay, user)
    try:
        result = {}
        for folder in ("INBOX", "DeltaChat"):
            status, data = imap.select(folder)
            if status == "OK":
                result[folder] = int(data[0])
        return result
    finally:
        imap.logout()


def stored_bytes(home: Path) -> int:
    """What Dovecot's quota counts: every file in cur/ and new/ of every folder."""
    total = 0
    for folder in [home, *(p for p in home.iterdir() if p.name.startswith(".") and p.is_dir())]:
        for box in ("cur", "new"):
            if (folder / box).is_dir():
                total += sum(f.stat().st_size for f in (folder / box).iterdir())
    return total


def kib(size: int) -> int:
    """Bytes in KiB, rounded up as `doveadm quota get` shows them."""
    return -(-size // 1024)


def quota_kib(relay: Relay, user: str) -> int:
    """STORAGE as Dovecot's quota plugin reports it (from maildirsize, or a recount)."""
    out = relay.dovecot.doveadm("-f", "tab", "quota", "get", "-u", user).stdout.splitlines()
    header = out[0].split("\t")
    for line in out[1:]:
        row = dict(zip(header, line.split("\t"), strict=False))
        if row["Type"] == "STORAGE":
            return int(row["Value"])
    raise AssertionError(out)


def reap_later(relay: Relay, days_ahead: int) -> str:
    """chatmail-expire as its unit runs it, `days_ahead` days in the future (libfaketime)."""
    argv = exec_start(read_unit(UNITS_DIR / "chatmail-expire.service"), VENV_BIN)
    # libfaketime is preloaded only into the reaper (after setpriv), not into setpriv
    fake = [
        f"LD_PRELOAD={LIBFAKETIME}",
        f"FAKETIME=+{days_ahead}d",
        "FAKETIME_DONT_FAKE_MONOTONIC=1",
    ]
    result = subprocess.run(
        ["setpriv", f"--reuid={MAIL_USER}", f"--regid={MAIL_USER}", "--init-groups", "--",
         "env", *fake, *argv, "--json"],
        capture_output=True, text=True, timeout=300, cwd="/",
        env={**os.environ, "CHATMAIL_CONFIG": relay.config.path},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_reaper_over_real_dovecot_mailboxes(live_relay):
    relay = live_relay
    a, b, c = (f"{name}@chat.example" for name in ("alice0001", "bob000002", "carol0003"))
    mailboxes = Path(relay.config.chatmail.mailboxes_dir)
    for user in (a, b, c):  # the first login creates the account
        imap_login(relay, user).logout()
        assert (mailboxes / user / "password").is_file()
    # alice: 6 small and 2 large messages; she opens INBOX (Dovecot moves the files to
    # cur/), moves two small ones to DeltaChat and marks everything seen
    deliver(relay, a, [500] * 6 + [25000] * 2)
    imap = imap_login(relay, a)
    imap.create("DeltaChat")
    imap.select("INBOX")
    assert imap.uid("MOVE", "1:2", "DeltaChat")[0] == "OK"
    imap.store("1:*", "+FLAGS", "\\Seen")
    imap.logout()
    # bob: mail, and his last login was 100 days ago
    deliver(relay, b, [500] * 2)
    os.utime(mailboxes / b / "password", (day_start(time.time() - 100 * DAY),) * 2)
    # carol: 18 x ~5 KB, about 90 KB of her 100 KB quota: above 75 %
    deliver(relay, c, [5000] * 18)
    assert counts(relay, a) == {"INBOX": 6, "DeltaChat": 2}
    assert counts(relay, c) == {"INBOX": 18}
    assert (mailboxes / c / "maildirsize").is_file()
    assert quota_kib(relay, c) == kib(stored_bytes(mailboxes / c))

    # what the trim must delete: oldest first (Dovecot's names sort by delivery time
    # first), until at most 70 % of 100 KiB is left
    usage = stored_bytes(mailboxes / c)
    expected_trimmed = 0
    for name in sorted(os.listdir(mailboxes / c / "cur")):
        if usage * 100 <= 70 * 100 * 1024:
            break
        usage -= (mailboxes / c / "cur" / name).stat().st_size
        expected_trimmed += 1
    assert expected_trimmed >= 2

    # two days later: bob is inactive (removed), carol's mailbox is trimmed
    out = reap_later(relay, 2)
    assert '"accounts_removed": 1' in out, out
    assert f'"quota": {expected_trimmed}' in out, out
    assert not (mailboxes / b).exists()
    assert not (mailboxes / c / "maildirsize").exists()  # rule 6
    assert counts(relay, a) == {"INBOX": 6, "DeltaChat": 2}
    assert counts(relay, c) == {"INBOX": 18 - expected_trimmed}
    # Dovecot recounted by itself (maildirsize was gone) and a recalc agrees
    assert quota_kib(relay, c) == kib(stored_bytes(mailboxes / c))
    assert stored_bytes(mailboxes / c) * 100 <= 70 * 100 * 1024
    relay.dovecot.doveadm("quota", "recalc", "-u", c)
    assert quota_kib(relay, c) == kib(stored_bytes(mailboxes / c))

    # eight days later: alice's two large seen messages are gone, the small ones stay
    out = reap_later(relay, 8)
    assert '"large": 2' in out, out
    assert counts(relay, a) == {"INBOX": 4, "DeltaChat": 2}
    assert quota_kib(relay, a) == kib(stored_bytes(mailboxes / a))

    # 21 days later: every message has expired; the accounts stay (recent logins)
    reap_later(relay, 21)
    assert counts(relay, a) == {"INBOX": 0, "DeltaChat": 0}
    assert counts(relay, c) == {"INBOX": 0}
    for user in (a, c):
        assert quota_kib(relay, user) == 0
        relay.dovecot.doveadm("quota", "recalc", "-u", user)
        assert quota_kib(relay, user) == 0
        assert (mailboxes / user / "password").is_file()
    # bob's address is free again: a new login creates a fresh, empty account
    assert counts(relay, b) == {"INBOX": 0}
    assert "Error" not in relay.dovecot.log_text(), relay.dovecot.log_text()[-3000:]
