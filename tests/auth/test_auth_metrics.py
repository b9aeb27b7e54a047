"""chatmail-auth's counters after real IMAP logins through Dovecot: each moved by what happened."""

from __future__ import annotations

import imaplib
import os
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import MAIL_USER, mail_ids
from harness.activation import ActivatedService
from harness.authtools import start_auth
from harness.dovecot import Dovecot
from harness.fixtures import stack_config
from metrics.privacy import scan_directory
from metrics.promtool import check_metrics
from metrics.wait import moved, samples, wait_for

from chatmail_services.config import Config

pytestmark = pytest.mark.stack

NEW = "metrics01@chat.example"
PASSWORD = "password-of-metrics"
PASSDB = "chatmail_auth_passdb_lookups_total"


@pytest.fixture
def stack(stack_root: Path) -> Iterator[tuple[Config, Dovecot, ActivatedService]]:
    """Dovecot and chatmail-auth as the mail user, socket-activated (as test_auth_dovecot)."""
    config = stack_config(stack_root)
    run = stack_root / "run"
    run.mkdir()
    os.chown(run, *mail_ids())
    auth = start_auth(config, run, user=MAIL_USER)
    dovecot = Dovecot(stack_root, config, auth_socket=auth.socket_path)
    try:
        with dovecot:
            yield config, dovecot, auth
    finally:
        auth.close()


def login(dovecot: Dovecot, user: str, password: str) -> bool:
    imap = imaplib.IMAP4_SSL(
        "127.0.0.1", dovecot.imaps_port, ssl_context=ssl._create_unverified_context(), timeout=30
    )
    try:
        imap.login(user, password)
    except imaplib.IMAP4.error:
        return False
    imap.logout()
    return True


def test_logins_creations_and_refusals_are_counted(stack):
    config, dovecot, auth = stack
    path = Path(config.chatmail.metrics_dir) / "chatmail-auth.prom"
    before = wait_for(path, lambda s: f'{PASSDB}{{result="found"}}' in s)

    assert login(dovecot, NEW, PASSWORD)  # created
    assert login(dovecot, NEW, PASSWORD)  # exists
    assert not login(dovecot, NEW, "wrong-password-x")  # Dovecot refuses: found, no login
    assert not login(dovecot, "metrics02@chat.example", "short")  # too short: not created
    Path(config.auth.nocreate_file).touch()
    assert not login(dovecot, "metrics03@chat.example", PASSWORD)  # kill switch
    Path(config.auth.nocreate_file).unlink()

    want = {
        f'{PASSDB}{{result="found"}}': 3,
        f'{PASSDB}{{result="not_found"}}': 1,
        f'{PASSDB}{{result="tempfail"}}': 1,
        "chatmail_auth_accounts_created_total": 1,
        "chatmail_auth_logins_total": 2,
        'chatmail_auth_creations_refused_total{reason="invalid_password"}': 1,
        'chatmail_auth_creations_refused_total{reason="kill_switch"}': 1,
    }

    def as_wanted(current: dict[str, float]) -> bool:
        return {k: v for k, v in moved(before, current).items() if "_seconds" not in k} == want

    after = wait_for(path, as_wanted)
    lookups = (
        after["chatmail_auth_lookup_seconds_count"] - before["chatmail_auth_lookup_seconds_count"]
    )
    assert lookups >= 5  # the five passdb lookups, and Dovecot's userdb lookups after a login
    assert auth.stop() == 0
    assert samples(path) == after  # the last write at stop changed nothing
    result = check_metrics(path.read_text())
    assert result.returncode == 0, result.stdout + result.stderr
    assert scan_directory(path.parent) == {path.name: []}


def test_every_refusal_text_has_its_label():
    """The reasons accounts.py gives are all labelled (none counted as `other`)."""
    import inspect

    from chatmail_services.authsocket import accounts
    from chatmail_services.authsocket.metrics import REASONS

    source = inspect.getsource(accounts.creation_refusal) + inspect.getsource(
        accounts.headroom_refusal
    )
    texts = [
        line.split('return "', 1)[1].rsplit('"', 1)[0]
        for line in source.splitlines()
        if 'return "' in line
    ]
    assert texts and all(text in REASONS for text in texts), texts


def test_the_collector_counts_dovecots_imap_sessions(stack):
    """chatmail-metrics-collect asks the real Dovecot (doveadm who): one open session, then none."""
    import subprocess
    import sys

    from metrics.promtool import parse_samples

    config, dovecot, _auth = stack
    exe = str(Path(sys.executable).parent / "chatmail-metrics-collect")
    command = [exe, "--config", config.path, "--print", "--dovecot-config", str(dovecot.conf)]

    def sessions() -> float:
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        return parse_samples(out)["chatmail_dovecot_imap_sessions"]

    assert sessions() == 0
    imap = imaplib.IMAP4_SSL(
        "127.0.0.1", dovecot.imaps_port, ssl_context=ssl._create_unverified_context(), timeout=30
    )
    imap.login(NEW, PASSWORD)
    assert sessions() == 1
    imap.logout()
