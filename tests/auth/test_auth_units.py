"""The systemd units: `systemd-analyze verify` passes; the socket is for the mail user only."""

from __future__ import annotations

import subprocess
from pathlib import Path

from harness.authtools import CHATMAIL_AUTH
from harness.units import UNITS_DIR, unit_config


def test_systemd_analyze_verify(tmp_path: Path):
    for name in ("chatmail-auth.socket", "chatmail-auth.service"):
        text = (UNITS_DIR / name).read_text()
        # the package installs /usr/bin/chatmail-auth; here the venv's console script stands in
        text = text.replace("/usr/bin/chatmail-auth", str(CHATMAIL_AUTH))
        (tmp_path / name).write_text(text)
    out = subprocess.run(
        ["systemd-analyze", "verify",
         str(tmp_path / "chatmail-auth.socket"), str(tmp_path / "chatmail-auth.service")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "chatmail-auth" not in out.stderr, out.stderr


def test_socket_only_for_the_mail_user():
    sock = unit_config("chatmail-auth.socket")["Socket"]
    assert sock["ListenStream"] == "/run/chatmail/auth.sock"
    assert (sock["SocketUser"], sock["SocketGroup"], sock["SocketMode"]) == (
        "vmail", "vmail", "0660",
    )  # fmt: skip


def test_service_is_sandboxed():
    service = unit_config("chatmail-auth.service")["Service"]
    assert service["ExecStart"] == "/usr/bin/chatmail-auth serve"
    assert service["User"] == service["Group"] == "vmail"
    assert service["ReadWritePaths"] == "/var/lib/chatmail/mailboxes"
    assert service["ProtectSystem"] == "strict"
    assert service["PrivateNetwork"] == "yes"
    assert service["NoNewPrivileges"] == "yes"
    assert service["RestrictAddressFamilies"] == "AF_UNIX"
    assert service["RestartPreventExitStatus"] == "78"
