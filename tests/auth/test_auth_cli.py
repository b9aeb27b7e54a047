"""chatmail-auth's command line: checkpassword, new-credentials, serve --socket, exit 78."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from chatmail_services.authsocket.hashing import verify_password
from harness.authtools import (
    CHATMAIL_AUTH,
    HELLO_AUTH,
    exchange,
    passdb_lookup,
    start_auth,
    userdb_lookup,
)
from harness.net import serving_on_own_socket

USER = "abcdefghi@chat.example"
PASSWORD = "s3cret-passw0rd"


def checkpassword(config, user: str, password: str, env: dict | None = None):
    """Run `checkpassword env` with `user\\0password\\0` on fd 3, as Dovecot does."""
    return subprocess.run(
        ["sh", "-c", 'exec "$@" 3<&0', "sh", str(CHATMAIL_AUTH), "--config", config.path,
         "checkpassword", "env"],
        input=f"{user}\0{password}\0".encode(), capture_output=True, timeout=30,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def env_of(output: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in output.decode().splitlines() if "=" in line)


def test_checkpassword_creates_verifies_and_execs(config):
    home = Path(config.chatmail.mailboxes_dir) / USER
    first = checkpassword(config, USER, PASSWORD)
    assert first.returncode == 0, first.stderr
    env = env_of(first.stdout)
    assert env["USER"] == USER and env["HOME"] == str(home)
    assert env["userdb_uid"] == str(os.getuid())
    assert env["userdb_quota_rule"] == "*:storage=512000"
    assert set(env["EXTRA"].split()) == {
        "userdb_uid", "userdb_gid", "userdb_quota_rule", "userdb_quota_storage_size",
    }  # fmt: skip
    stored = (home / "password").read_text().strip()
    assert verify_password(PASSWORD.encode(), stored)
    assert checkpassword(config, USER.upper(), PASSWORD).returncode == 0
    # a wrong password: exit 1, nothing changes
    os.utime(home / "password", (86400, 86400))
    wrong = checkpassword(config, USER, "not-the-password")
    assert wrong.returncode == 1 and wrong.stdout == b""
    assert (home / "password").read_text().strip() == stored
    assert (home / "password").stat().st_mtime == 86400


def test_checkpassword_refusals(config):
    assert checkpassword(config, "../etc/x@chat.example", PASSWORD).returncode == 1
    assert checkpassword(config, USER, "short").returncode == 1
    Path(config.auth.nocreate_file).touch()
    assert checkpassword(config, USER, PASSWORD).returncode == 111  # temporary
    assert not any(Path(config.chatmail.mailboxes_dir).iterdir())


def test_checkpassword_userdb_only(config):
    assert checkpassword(config, USER, "", {"AUTHORIZED": "1"}).returncode == 3
    checkpassword(config, USER, PASSWORD)
    found = checkpassword(config, USER, "", {"AUTHORIZED": "1"})
    assert found.returncode == 0
    assert env_of(found.stdout)["AUTHORIZED"] == "2"


def test_new_credentials(config):
    out = subprocess.run(
        [str(CHATMAIL_AUTH), "--config", config.path, "new-credentials"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    creds = json.loads(out.stdout)
    assert re.fullmatch(r"[a-z0-9]{9}@chat\.example", creds["email"])
    assert len(creds["password"]) >= 24 and creds["password"].isalnum()
    assert not any(Path(config.chatmail.mailboxes_dir).iterdir())  # nothing stored
    # and the credentials work as a first login
    login = checkpassword(config, creds["email"], creds["password"])
    assert login.returncode == 0, login.stderr


def test_unknown_mail_user_is_a_config_error(make_config):
    config = make_config(auth={"mail_user": "no-such-user-here"})
    out = subprocess.run(
        [str(CHATMAIL_AUTH), "--config", config.path, "serve"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 78
    assert "mail_user" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_serve_binds_its_own_socket_without_activation(config, tmp_path):
    path, log = tmp_path / "own.sock", tmp_path / "serve.log"
    with serving_on_own_socket(CHATMAIL_AUTH, config.path, path, log) as proc:
        assert exchange(path, HELLO_AUTH + userdb_lookup(USER), 1) == [b"N"]
        assert (path.stat().st_mode & 0o777) == 0o660
    assert proc.returncode == 0, log.read_text()


def test_debug_level_logs_addresses(make_config, tmp_path):
    config = make_config(chatmail={"log_level": "debug"})
    daemon = start_auth(config, tmp_path)
    try:
        exchange(daemon.socket_path, HELLO_AUTH + passdb_lookup(USER, PASSWORD), 1)
    finally:
        assert daemon.close() == 0
    assert USER in daemon.log_text()
