"""The production rendering of the templates is accepted by Postfix's and Dovecot's parsers
(postconf and doveconf of the installed Postfix and Dovecot: marked `stack`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from harness import REPO, VENV_BIN

pytestmark = pytest.mark.stack


def test_production_configs_parse(tmp_path: Path, make_config):
    secret = tmp_path / "turn-secret"
    secret.write_text("production-secret\n")
    config = make_config(metadata={"turn_host": "turn.chat.example", "turn_secret_file": secret})
    out = tmp_path / "rendered"
    subprocess.run(
        [
            str(VENV_BIN / "python"),
            str(REPO / "scripts" / "render-mail-config.py"),
            "--config",
            config.path,
            "--tls-cert",
            "/etc/ssl/certs/ssl-cert-snakeoil.pem",
            "--tls-key",
            "/etc/ssl/private/ssl-cert-snakeoil.key",
            "--mail-user",
            "chatmaildev",
            "--out",
            str(out),
        ],
        check=True,
        cwd=tmp_path,
        timeout=60,
    )
    postconf = subprocess.run(
        ["postconf", "-c", str(out / "postfix"), "-n"], capture_output=True, text=True, check=True
    )
    assert "milter_default_action = tempfail" in postconf.stdout
    assert "smtpd_milters = unix:chatmail/milter.sock" in postconf.stdout
    assert "postconf: warning" not in postconf.stderr, postconf.stderr
    master = subprocess.run(
        ["postconf", "-c", str(out / "postfix"), "-M"], capture_output=True, text=True, check=True
    )
    services = {tuple(line.split()[:2]): line for line in master.stdout.splitlines() if line}
    for name in ("smtp", "submission", "submissions"):
        line = services[(name, "inet")]
        assert line.split()[4] == "y", line  # chrooted, as on Debian
    assert "cleanup_service_name=authclean" in services[("submissions", "inet")]
    doveconf = subprocess.run(
        ["doveconf", "-c", str(out / "dovecot" / "dovecot.conf"), "-n"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "driver = dict" in doveconf.stdout
    assert doveconf.stderr == "", doveconf.stderr
    assert "mail_attribute_dict = proxy:/run/chatmail/metadata.sock:metadata" in doveconf.stdout
    assert "imap_capability = +XDELTAPUSH XCHATMAIL" in doveconf.stdout
    assert "imap_metadata = yes" in doveconf.stdout
    assert "smtpd_recipient_limit = 1000" in postconf.stdout
    assert "last_login_dict = proxy:/run/chatmail/auth.sock:lastlogin" in doveconf.stdout
    assert "chat.example" in (out / "postfix" / "main.cf").read_text()
    turn = (out / "coturn" / "turnserver.conf").read_text()
    assert "static-auth-secret=production-secret\n" in turn and "use-auth-secret\n" in turn
    assert (out / "coturn" / "turnserver.conf").stat().st_mode & 0o777 == 0o640
    # real coturn reads the same template in tests/metadata/test_metadata_turn.py
