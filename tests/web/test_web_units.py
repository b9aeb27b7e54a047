"""chatmail-web's units and command line: verify, the socket for nginx only, the sandbox
without any writable or mail path, exit 78 on a bad configuration, `serve --socket` without
activation, and `site` writing into a directory."""

from __future__ import annotations

import subprocess
from pathlib import Path

from chatmail_services.web.site import site_files
from harness import VENV_BIN
from harness.net import serving_on_own_socket
from harness.units import UNITS_DIR, unit_config
from package.unitfiles import stage_units, verify
from web.webclient import exchange, request

COMMAND = VENV_BIN / "chatmail-web"


def test_systemd_analyze_verify(tmp_path: Path):
    names = ["chatmail-web.socket", "chatmail-web.service"]
    out = verify(stage_units(tmp_path / "units"), names)
    assert out.returncode == 0, out.stderr
    assert "chatmail-web" not in out.stderr, out.stderr


def test_socket_for_nginx_workers_only():
    sock = unit_config("chatmail-web.socket")["Socket"]
    assert sock["ListenStream"] == "/run/chatmail/web.sock"
    assert (sock["SocketUser"], sock["SocketGroup"], sock["SocketMode"]) == (
        "vmail",
        "www-data",
        "0660",
    )


def test_service_is_sandboxed_and_sees_no_mail():
    service = unit_config("chatmail-web.service")["Service"]
    assert service["ExecStart"] == "/usr/bin/chatmail-web serve"
    assert service["Type"] == "notify"
    assert service["ReadWritePaths"] == "-/var/lib/prometheus/node-exporter"  # metrics only
    assert service["PrivateNetwork"] == "yes" and service["RestrictAddressFamilies"] == "AF_UNIX"
    text = (UNITS_DIR / "chatmail-web.service").read_text()
    assert "InaccessiblePaths=-/var/lib/chatmail/mailboxes -/etc/chatmail/dkim" in text
    assert service["RestartPreventExitStatus"] == "78"


def test_bad_config_is_exit_78(tmp_path):
    bad = tmp_path / "bad.ini"
    bad.write_text("[web]\nnew_window = 0\n")
    result = subprocess.run(
        [str(COMMAND), "--config", str(bad), "serve"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 78 and "new_window" in result.stderr


def test_serve_binds_its_own_socket_without_activation(config, tmp_path):
    path, log = tmp_path / "own.sock", tmp_path / "serve.log"
    with serving_on_own_socket(COMMAND, config.path, path, log) as proc:
        answer = exchange(path, request("POST"))
        assert answer.status == 200 and answer.json()["email"].endswith("@chat.example")
        assert path.stat().st_mode & 0o777 == 0o660
    assert proc.returncode == 0, log.read_text()
    assert "stopped" in log.read_text()


def test_site_command_writes_the_files(config, tmp_path):
    result = subprocess.run(
        [str(COMMAND), "--config", config.path, "site", str(tmp_path / "www")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    written = sorted(Path(line).relative_to(tmp_path / "www") for line in result.stdout.split())
    assert written == sorted(Path(name) for name in site_files(config))


def test_site_into_an_unwritable_place_is_exit_1(config, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = subprocess.run(
        [str(COMMAND), "--config", config.path, "site", str(blocker / "www")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1 and "cannot write" in result.stderr
