"""The chatmail-expire command: output forms, privacy, metrics, exit status."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from chatmail_services.expire import cli
from expire.relaytree import Relay, snapshot

from chatmail_services.config import load_config
from chatmail_services.layout import DAY

EXE = str(Path(sys.executable).parent / "chatmail-expire")
A = "alice0001@chat.example"
B = "bob000002@chat.example"
C = "carol0003@chat.example"
NOBODY = 65534


def run_cli(config, *args, env=None, cwd=None):
    return subprocess.run(
        [EXE, "--config", config.path, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        cwd=cwd or Path(config.path).parent,
    )


@pytest.fixture
def live(config):
    """A relay tree relative to the real clock, ages hours away from every threshold."""
    relay = Relay(Path(config.chatmail.mailboxes_dir), now=int(time.time()))
    relay.account(A, folders=(".DeltaChat",))
    relay.maildirsize(A)
    relay.message(A, age=25 * DAY, folder=".DeltaChat")
    relay.message(A, age=2 * DAY, folder=".DeltaChat")
    relay.account(B, login_days_ago=120)
    relay.message(B, age=DAY, size=300)
    relay.account(C)
    relay.message(C, age=DAY)
    return relay


def test_dry_run_is_default_and_changes_nothing(config, live):
    before = snapshot(live.root)
    result = run_cli(config)
    assert result.returncode == 0, result.stderr
    assert snapshot(live.root) == before
    assert result.stdout.startswith("dry run: scanned 3 accounts, would remove 1 accounts")
    assert result.stdout.count("\n") == 1


def test_remove_summary_and_json(config, live):
    dry = json.loads(run_cli(config, "--json").stdout)
    result = run_cli(config, "--remove", "--json")
    assert result.returncode == 0, result.stderr
    done = json.loads(result.stdout)
    assert dry["dry_run"] is True and done["dry_run"] is False
    for key in ("accounts_scanned", "accounts_removed", "messages_removed", "bytes_removed"):
        assert dry[key] == done[key]
    assert done["accounts_scanned"] == 3
    assert done["accounts_removed"] == 1
    assert done["messages_removed"] == 2
    assert done["messages_by_rule"] == {"inactive": 1, "age": 1, "large": 0, "quota": 0}
    assert done["errors"] == 0
    assert isinstance(done["seconds"], float)
    assert not (live.root / B).exists()
    again = run_cli(config, "--remove")
    assert "scanned 2 accounts, removed 0 accounts and 0 messages (0 bytes)" in again.stdout


def test_account_limits_the_pass_to_that_account(config, live):
    """As Dovecot's quota warning runs it: only the named account, nothing printed."""
    result = run_cli(config, "--remove", "--quiet", "--account", A.upper())
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert (live.root / B).exists()  # inactive, but not named: kept
    summary = json.loads(run_cli(config, "--json", "--account", A, "--account", B).stdout)
    assert summary["accounts_scanned"] == 2
    assert summary["messages_by_rule"]["age"] == 0  # A's old message went in the first run
    assert summary["accounts_removed"] == 1  # B would go
    for bad in ("../etc", ".", ""):
        refused = run_cli(config, "--account", bad)
        assert refused.returncode == 1 and "not an account name" in refused.stderr, bad


def test_addresses_only_with_verbose(config, live):
    quiet = run_cli(config)
    assert "@" not in quiet.stdout + quiet.stderr
    loud = run_cli(config, "--verbose")
    assert f"would remove inactive account [{B}]" in loud.stdout
    assert loud.stdout.count("would delete .DeltaChat/cur/") == 1
    assert f" (age) [{A}]" in loud.stdout
    quiet_removal = run_cli(config, "--remove")
    assert "@" not in quiet_removal.stdout + quiet_removal.stderr


def test_textfile_metrics_written_atomically(config, live, tmp_path):
    metrics_dir = tmp_path / "textfiles"
    metrics_dir.mkdir()
    target = metrics_dir / "chatmail_expire.prom"
    target.write_text("old\n")
    result = run_cli(config, "--remove", "--textfile", str(target))
    assert result.returncode == 0, result.stderr
    assert os.listdir(metrics_dir) == ["chatmail_expire.prom"]  # no temporary left behind
    text = target.read_text()
    values = dict(
        line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    assert values["chatmail_expire_accounts_scanned"] == "3"
    assert values["chatmail_expire_accounts_removed"] == "1"
    assert values['chatmail_expire_messages_removed{rule="age"}'] == "1"
    assert values['chatmail_expire_messages_removed{rule="inactive"}'] == "1"
    assert values["chatmail_expire_last_run_dry"] == "0"
    assert values["chatmail_expire_errors"] == "0"
    assert abs(float(values["chatmail_expire_last_run_timestamp_seconds"]) - time.time()) < 60
    assert "# TYPE chatmail_expire_bytes_removed gauge" in text
    assert "@" not in text


def test_unprocessable_entry_exits_1_and_is_reported(write_config_at):
    """Run as an unprivileged user: one box it may not write in, the rest is processed."""
    top = Path(tempfile.mkdtemp(prefix="expire-perm-"))
    try:
        top.chmod(0o755)
        config = write_config_at(top)
        relay = Relay(Path(config.chatmail.mailboxes_dir), now=int(time.time()))
        relay.account(B, login_days_ago=120)
        relay.message(B, age=DAY)
        relay.account(C)
        stuck = relay.message(C, age=30 * DAY)
        other = relay.message(C, age=30 * DAY, folder=".DeltaChat")
        for dirpath, dirnames, filenames in os.walk(top):
            for name in dirnames + filenames:
                os.chown(os.path.join(dirpath, name), NOBODY, NOBODY)
        os.chown(stuck.parent, 0, 0)  # C's INBOX cur/: root's, so nobody cannot delete there
        result = subprocess.run(
            ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
             EXE, "--config", config.path, "--remove"],
            capture_output=True, text=True, timeout=120, cwd=top,
        )  # fmt: skip
        assert result.returncode == 1, result.stdout + result.stderr
        assert stuck.exists() and not other.exists()
        assert not (relay.root / B).exists()  # the rest was processed
        lines = result.stderr.strip().splitlines()
        assert lines == [f"chatmail-expire: <account>/cur/{stuck.name}: Permission denied"]
        assert "1 errors" in result.stdout
    finally:
        shutil.rmtree(top)


@pytest.fixture
def write_config_at():
    def write(top: Path):
        (top / "mailboxes").mkdir()
        ini = top / "chatmail.ini"
        mailboxes = top / "mailboxes"
        ini.write_text(
            f"[chatmail]\nmail_domain = chat.example\nmailboxes_dir = {mailboxes}\nmetrics_dir =\n"
        )
        ini.chmod(0o644)
        return load_config(str(ini))

    return write


def test_missing_mailboxes_dir_exits_1(make_config, tmp_path):
    config = make_config(chatmail={"mailboxes_dir": tmp_path / "nowhere"})
    result = run_cli(config)
    assert result.returncode == 1
    assert f"{tmp_path / 'nowhere'}: No such file or directory" in result.stderr


def test_bad_config_exits_78(tmp_path):
    bad = tmp_path / "bad.ini"
    bad.write_text("[expire]\ndelete_mails_after = soon\n")
    result = subprocess.run([EXE, "--config", str(bad)], capture_output=True, text=True)
    assert result.returncode == 78
    assert "[expire] delete_mails_after" in result.stderr


def test_in_process_main_reports_errors_masked(config, live, monkeypatch, capsys):
    real_unlink = os.unlink

    def failing(path, *args, **kwargs):
        if path == "password":
            raise PermissionError(13, "Permission denied")
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", failing)
    assert cli.main(["--config", config.path, "--remove"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == ["chatmail-expire: <account>/password: Permission denied"]
