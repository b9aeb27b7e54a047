"""The production rendering (`chatmail-setup --out`) is accepted by Postfix's and Dovecot's
parsers (postconf and doveconf of the installed Postfix and Dovecot: marked `stack`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from harness import MAIL_USER, VENV_BIN

SNAKEOIL = ("/etc/ssl/certs/ssl-cert-snakeoil.pem", "/etc/ssl/private/ssl-cert-snakeoil.key")

pytestmark = pytest.mark.stack


def test_production_configs_parse(tmp_path: Path, make_config):
    secret = tmp_path / "turn-secret"
    config = make_config(
        tls={"cert_file": SNAKEOIL[0], "key_file": SNAKEOIL[1]},
        metadata={"turn_host": "turn.chat.example", "turn_secret_file": secret},
    )
    out = tmp_path / "rendered"
    # the tree --out renders into holds what the setup reads: the certificate, the secret
    for path, text in ((SNAKEOIL[0], "cert"), (SNAKEOIL[1], "key"), (str(secret), "s3cret")):
        (out / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (out / path.lstrip("/")).write_text(f"{text}\n")
    subprocess.run(
        [
            str(VENV_BIN / "chatmail-setup"),
            *("--config", config.path, "--mail-user", MAIL_USER, "--out", str(out)),
        ],
        check=True,
        cwd=tmp_path,
        timeout=60,
        capture_output=True,
    )
    postfix, dovecot = out / "etc" / "postfix", out / "etc" / "dovecot"
    postconf = subprocess.run(
        ["postconf", "-c", str(postfix), "-n"], capture_output=True, text=True, check=True
    )
    assert "milter_default_action = tempfail" in postconf.stdout
    assert "smtpd_milters = unix:chatmail/milter.sock" in postconf.stdout
    assert "postconf: warning" not in postconf.stderr, postconf.stderr
    # delivery to Dovecot drops these two fields (an inline table: nothing to read in chroot)
    table = subprocess.run(
        ["postconf", "-c", str(postfix), "-h", "lmtp_header_checks"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    for field, action in (
        ("DKIM-Signature: v=1; d=chat.example", "IGNORE"),
        ("dkim-signature:v=1", "IGNORE"),
        ("Authentication-Results: chat.example; dkim=pass", "IGNORE"),
        ("X-DKIM-Signature: v=1", ""),
        ("ARC-Authentication-Results: i=1", ""),
    ):
        query = ["postmap", "-c", str(postfix), "-q", field, table]
        found = subprocess.run(query, capture_output=True, text=True)
        assert found.stdout.strip() == action, (field, found)
    master = subprocess.run(
        ["postconf", "-c", str(postfix), "-M"], capture_output=True, text=True, check=True
    )
    services = {tuple(line.split()[:2]): line for line in master.stdout.splitlines() if line}
    for name in ("smtp", "submission", "submissions"):
        line = services[(name, "inet")]
        assert line.split()[4] == "y", line  # chrooted, as on Debian
    assert "cleanup_service_name=authclean" in services[("submissions", "inet")]
    doveconf = subprocess.run(
        ["doveconf", "-c", str(dovecot / "dovecot.conf"), "-n"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "driver = dict" in doveconf.stdout
    assert doveconf.stderr == "", doveconf.stderr
    assert "mail_attribute_dict = proxy:/run/chatmail/metadata.sock:metadata" in doveconf.stdout
    # the push hook's own dict, in LMTP only (docs/metadata.md: only a delivery notifies)
    lmtp = doveconf.stdout[doveconf.stdout.index("protocol lmtp {") :]
    lmtp = lmtp[: lmtp.index("\n}")]
    assert "mail_attribute_dict = proxy:/run/chatmail/metadata.sock:push" in lmtp
    assert "imap_capability = +XDELTAPUSH XCHATMAIL" in doveconf.stdout
    assert "imap_metadata = yes" in doveconf.stdout
    assert "smtpd_recipient_limit = 1000" in postconf.stdout
    assert "last_login_dict = proxy:/run/chatmail/auth.sock:lastlogin" in doveconf.stdout
    assert "chat.example" in (postfix / "main.cf").read_text()
    turn = out / "etc" / "turnserver.conf"
    assert (
        "static-auth-secret=s3cret\n" in turn.read_text()
        and "use-auth-secret\n" in turn.read_text()
    )
    assert turn.stat().st_mode & 0o777 == 0o640
    # real coturn reads the same template in tests/metadata/test_metadata_turn.py
