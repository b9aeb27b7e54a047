"""chatmail-metadata's units and command line: verify, the socket for the mail user only, the
sandbox, exit 78 on a bad configuration, and `serve --socket` without activation."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from harness import VENV_BIN
from harness.net import serving_on_own_socket
from harness.units import unit_config
from package.unitfiles import stage_units, verify

COMMAND = VENV_BIN / "chatmail-metadata"


def test_systemd_analyze_verify(tmp_path: Path):
    names = ["chatmail-metadata.socket", "chatmail-metadata.service"]
    out = verify(stage_units(tmp_path / "units"), names)  # our man pages on MANPATH
    assert out.returncode == 0, out.stderr
    assert "chatmail-metadata" not in out.stderr, out.stderr


def test_socket_only_for_the_mail_user():
    sock = unit_config("chatmail-metadata.socket")["Socket"]
    assert sock["ListenStream"] == "/run/chatmail/metadata.sock"
    assert (sock["SocketUser"], sock["SocketGroup"], sock["SocketMode"]) == ("vmail",) * 2 + (
        "0660",
    )


def test_service_is_sandboxed():
    service = unit_config("chatmail-metadata.service")["Service"]
    assert service["ExecStart"] == "/usr/bin/chatmail-metadata serve"
    assert service["User"] == service["Group"] == "vmail"
    assert service["ReadWritePaths"] == (
        "/var/lib/chatmail/mailboxes /var/lib/chatmail/notify-queue"
    )
    assert service["ProtectSystem"] == "strict"
    # network for the notifier only: the auth responder (password hashes) has none
    assert service["RestrictAddressFamilies"] == "AF_UNIX AF_INET AF_INET6"
    assert unit_config("chatmail-auth.service")["Service"]["PrivateNetwork"] == "yes"
    assert service["RestartPreventExitStatus"] == "78"


def test_unreadable_turn_secret_is_exit_78(make_config, tmp_path):
    config = make_config(metadata={"turn_host": "turn.example", "turn_secret_file": tmp_path / "x"})
    result = subprocess.run(
        [str(COMMAND), "--config", config.path, "serve"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 78
    assert "turn_secret_file" in result.stderr


def test_serve_binds_its_own_socket_without_activation(config, tmp_path):
    path, log = tmp_path / "own.sock", tmp_path / "serve.log"
    with serving_on_own_socket(COMMAND, config.path, path, log) as proc:
        key = "shared/" + "0" * 32 + "/vendor/vendor.dovecot/pvt/server/vendor/deltachat/"
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(10)
            sock.connect(str(path))
            sock.sendall(f"H3\t2\t0\t\tmetadata\nL{key}maxsmtprecipients\t\n".encode())
            assert sock.recv(100) == b"O1000\n"
        assert oct(path.stat().st_mode & 0o777) == "0o660"
    assert proc.returncode == 0, log.read_text()
    assert "Traceback" not in log.read_text()
