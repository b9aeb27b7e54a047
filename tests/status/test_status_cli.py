"""`chatmail-status` as the admin runs it, against a real file tree: a configuration, a
self-signed certificate made by chatmail-setup's own code (valid, nearly expired, expired),
accounts made by chatmail-auth's code, notifications queued by chatmail-metadata's queue,
Postfix queue files. The checks that need systemd are left out here (`--skip`): the
container tests (tests/package/test_systemd.py, test_status_*) run them under real systemd."""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from chatmail_services.authsocket.accounts import create_account, settings_from_config
from chatmail_services.metadata.notifyqueue import Queue
from chatmail_services.relaysetup import tlscert
from chatmail_services.status import rules
from harness import VENV_BIN
from harness.net import free_port

SYSTEMD_CHECKS = ("--skip", "units", "--skip", "reaper")
OFFLINE = (*SYSTEMD_CHECKS, "--skip", "dns")
ACCOUNTS = ("alice1234@chat.example", "bobby5678@chat.example")


def _cert(path: Path, days_valid: int, days_ago: int = 0) -> Path:
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=days_ago)
    cert, _key = tlscert.self_signed("chat.example", valid_days=days_valid, now=start)
    path.write_bytes(cert)
    return path


@pytest.fixture
def tree(tmp_path: Path, make_config):
    """A relay's files: two accounts, a queued notification, Postfix queue files; returns
    (config path, Postfix queue directory)."""
    cert = _cert(tmp_path / "fullchain.pem", 90)
    config = make_config(tls={"cert_file": cert})
    settings = settings_from_config(config)
    for address in ACCOUNTS:
        create_account(settings, address, "a-long-password")
    Queue(config.metadata.queue_dir, 100).put(ACCOUNTS[0], ["device-token-1"], time.time() - 60)
    spool = tmp_path / "spool"
    (spool / "active").mkdir(parents=True)
    (spool / "deferred" / "A").mkdir(parents=True)
    (spool / "active" / "4ABCDEF").write_text("x")
    for name in ("A1", "A2"):
        (spool / "deferred" / "A" / name).write_text("x")
    return Path(config.path), spool


def status(tree, *args: str) -> subprocess.CompletedProcess[str]:
    config, spool = tree
    command = [str(VENV_BIN / "chatmail-status"), "--config", str(config)]
    command += ["--postfix-queue-dir", str(spool), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def _lines(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """check name -> 'state text' from the text report."""
    lines = result.stdout.splitlines()[1:]
    return {line.split()[1]: " ".join([line.split()[0], *line.split()[2:]]) for line in lines}


def _no_address(text: str) -> None:
    assert "@" not in text, text
    for address in ACCOUNTS:
        assert address.split("@")[0] not in text


def test_a_healthy_tree_is_ok_with_its_figures(tree):
    result = status(tree, *OFFLINE)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = _lines(result)
    assert result.stdout.startswith("chatmail relay: ok\n")
    assert lines["certificate"] in ("ok 89 days left", "ok 90 days left")
    assert lines["accounts"] == "ok 2 accounts"
    assert lines["postfix-queue"] == "ok 1 active, 2 deferred"
    assert lines["notify-queue"].startswith("ok 1 pending, oldest")
    assert lines["disk"].startswith("ok ") and "inodes free" in lines["disk"]
    assert lines["units"] == lines["reaper"] == lines["dns"] == "unknown skipped"
    assert result.stderr == ""
    _no_address(result.stdout)


def test_json_agrees_with_the_exit_status(tree):
    result = status(tree, *OFFLINE, "--json")
    report = json.loads(result.stdout)
    assert report["state"] == "ok" and result.returncode == 0
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["accounts"]["data"] == {"count": 2}
    assert checks["postfix-queue"]["data"] == {"active": 1, "deferred": 2}
    assert checks["notify-queue"]["data"]["count"] == 1
    assert checks["certificate"]["data"]["days_left"] in (89, 90)
    _no_address(result.stdout)


def test_an_expired_certificate_is_broken(tree, tmp_path):
    _cert(tmp_path / "fullchain.pem", 10, days_ago=40)
    result = status(tree, *OFFLINE)
    assert result.returncode == 2, result.stdout
    assert result.stdout.startswith("chatmail relay: broken\n")
    assert _lines(result)["certificate"] in (
        "broken expired 30 days ago",
        "broken expired 31 days ago",
    )


def test_a_certificate_near_its_end_is_degraded(tree, tmp_path):
    _cert(tmp_path / "fullchain.pem", 10)
    result = status(tree, *OFFLINE)
    assert result.returncode == 1, result.stdout
    assert _lines(result)["certificate"].startswith("degraded 9 days left")


def test_a_missing_certificate_is_broken(tree, tmp_path):
    (tmp_path / "fullchain.pem").unlink()
    result = status(tree, *OFFLINE)
    assert result.returncode == 2
    assert _lines(result)["certificate"] == f"broken {tmp_path / 'fullchain.pem'} missing"


def test_a_bad_configuration_is_broken_and_the_rest_not_checked(tree):
    config, _spool = tree
    config.write_text(config.read_text() + "\n[expire]\ndelete_mails_after = soon\n")
    result = status(tree, *OFFLINE)
    assert result.returncode == 2
    lines = _lines(result)
    assert lines["config"].startswith("broken ") and "delete_mails_after" in lines["config"]
    assert lines["certificate"] == "unknown not checked: configuration invalid"
    assert lines["postfix-queue"] == "ok 1 active, 2 deferred"


def test_the_kill_switch_is_auths_own_refusal(tree, tmp_path):
    (tmp_path / "nocreate").touch()
    result = status(tree, *OFFLINE)
    assert result.returncode == 1
    assert "account creation refused: account creation disabled" in _lines(result)["disk"]


def test_a_long_deferred_queue_is_degraded(tree):
    _config, spool = tree
    for index in range(rules.DEFERRED_DEGRADED):
        (spool / "deferred" / "A" / f"B{index}").write_text("x")
    result = status(tree, *OFFLINE)
    assert result.returncode == 1
    assert _lines(result)["postfix-queue"] == "degraded 1 active, 1002 deferred"


def test_a_missing_postfix_queue_is_broken(tree, tmp_path):
    config, _spool = tree
    result = status((config, tmp_path / "nothing"), *OFFLINE)
    assert result.returncode == 2
    assert _lines(result)["postfix-queue"].startswith("broken no Postfix queue at ")


def test_a_notification_older_than_the_give_up_time_is_degraded(tree, make_config):
    config, _spool = tree
    queue_dir = config.parent / "notify-queue"
    give_up = 18000  # [metadata] notify_give_up_after's default
    Queue(queue_dir, 100).put(ACCOUNTS[1], ["token-2"], time.time() - give_up - 60)
    result = status(tree, *OFFLINE)
    assert result.returncode == 1
    assert _lines(result)["notify-queue"].startswith("degraded 2 pending, oldest 5 h")
    assert "(older than notify_give_up_after)" in _lines(result)["notify-queue"]


def test_a_damaged_notification_is_degraded(tree, tmp_path):
    (tmp_path / "notify-queue" / ("0" * 32 + ".json")).write_text("{not json")
    result = status(tree, *OFFLINE)
    assert result.returncode == 1
    assert _lines(result)["notify-queue"].endswith(", 1 damaged")


def test_dns_that_does_not_answer_is_degraded(tree):
    """dnszone's real check, asking a loopback port where nothing answers."""
    config, _spool = tree
    config.write_text(
        config.read_text().replace("[dkim]\n", f"[dkim]\nresolver = 127.0.0.1:{free_port()}\n")
        + "\n[dns]\nipv4 = 192.0.2.1\n"
    )
    config.write_text(config.read_text().replace("[dkim]\n", "[dkim]\ndns_timeout = 0.2\n", 1))
    result = status(tree, *SYSTEMD_CHECKS)
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.fullmatch(r"degraded look-up failed for (\d+) of \1 records", _lines(result)["dns"])
    assert "192.0.2.1" not in result.stdout


def test_a_user_outside_the_group_is_refused(tree):
    """Run as nobody: neither root nor a member of chatmail-status."""
    if os.geteuid() != 0:
        pytest.fail("this test needs root, to run the command as nobody")
    config, _spool = tree
    result = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
         str(VENV_BIN / "chatmail-status"), "--config", str(config), *OFFLINE],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 77, result.stdout + result.stderr
    assert "chatmail-status group" in result.stderr
    assert result.stdout == ""
