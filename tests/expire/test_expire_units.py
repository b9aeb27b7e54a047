"""chatmail-expire.service and .timer: systemd accepts them, with every documented drop-in."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from harness import REPO

UNITS = REPO / "systemd-units"
DOC = REPO / "docs" / "expire.md"
EXE = str(Path(sys.executable).parent / "chatmail-expire")
NAMES = ["chatmail-expire.service", "chatmail-expire.timer"]
DROPIN_RE = re.compile(
    r"`/etc/systemd/system/(chatmail-expire\.(?:service|timer)\.d/[\w.-]+\.conf)`:\n\n"
    r"```ini\n(.*?)```",
    re.S,
)
DROPINS = DROPIN_RE.findall(DOC.read_text())

# the hardening baseline every service of the project carries
BASELINE = """User=vmail
Group=vmail
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
ProtectSystem=strict
ReadWritePaths=/var/lib/chatmail/mailboxes
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
PrivateNetwork=yes
PrivateUsers=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictAddressFamilies=AF_UNIX
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM
UMask=0077
RemoveIPC=yes
DevicePolicy=closed
IPAddressDeny=any
KeyringMode=private""".splitlines()


def stage(unit_dir: Path) -> Path:
    """The units with ExecStart pointing at the virtualenv's console script."""
    unit_dir.mkdir(parents=True, exist_ok=True)
    for name in NAMES:
        text = (UNITS / name).read_text().replace("/usr/bin/chatmail-expire", EXE)
        (unit_dir / name).write_text(text)
    return unit_dir


def verify(unit_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *NAMES],
        capture_output=True,
        text=True,
        cwd=unit_dir,
        timeout=120,
        env={**os.environ, "SYSTEMD_UNIT_PATH": f"{unit_dir}:"},
    )


def lines(name: str) -> list[str]:
    return [ln.strip() for ln in (UNITS / name).read_text().splitlines()]


def test_units_verify(tmp_path):
    result = verify(stage(tmp_path / "units"))
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_service_settings():
    service = lines("chatmail-expire.service")
    for line in ("Type=oneshot", "ExecStart=/usr/bin/chatmail-expire --remove", "Nice=19",
                 "IOSchedulingClass=idle", "CPUSchedulingPolicy=batch", *BASELINE):  # fmt: skip
        assert line in service, line
    assert [ln for ln in service if ln.startswith("ReadWritePaths=")] == [
        "ReadWritePaths=-/var/lib/prometheus/node-exporter",  # the metrics file
        "ReadWritePaths=/var/lib/chatmail/mailboxes",
    ]
    # /run read-only as in every unit (ProtectSystem=strict leaves it writable otherwise)
    assert [ln for ln in service if ln.startswith("ReadOnlyPaths")] == ["ReadOnlyPaths=/run"]
    assert not any(ln.startswith("Restart=") for ln in service)


def test_timer_settings():
    timer = lines("chatmail-expire.timer")
    for line in ("OnCalendar=daily", "Persistent=true", "RandomizedDelaySec=1h",
                 "WantedBy=timers.target"):  # fmt: skip
        assert line in timer, line


def test_the_units_command_line_runs(config):
    """ExecStart as the unit has it, against a real config: exit 0 and a summary line."""
    argv = next(ln for ln in lines("chatmail-expire.service") if ln.startswith("ExecStart="))
    argv = argv.removeprefix("ExecStart=").split()
    assert argv[0] == "/usr/bin/chatmail-expire"
    result = subprocess.run(
        [EXE, *argv[1:]],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CHATMAIL_CONFIG": config.path},
        cwd=Path(config.path).parent,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("scanned 0 accounts, removed 0 accounts")


def test_docs_show_dropins_for_schedule_and_options():
    names = {rel for rel, _ in DROPINS}
    assert "chatmail-expire.timer.d/schedule.conf" in names
    assert "chatmail-expire.service.d/options.conf" in names
    assert len(names) == len(DROPINS) >= 4


@pytest.mark.parametrize(("rel", "text"), DROPINS, ids=[rel for rel, _ in DROPINS])
def test_documented_dropin_verifies_with_the_units(tmp_path, rel, text):
    unit_dir = stage(tmp_path / "units")
    dropin = unit_dir / rel
    dropin.parent.mkdir()
    dropin.write_text(text.replace("/usr/bin/chatmail-expire", EXE))
    result = verify(unit_dir)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
    packaged = REPO / "docs" / "dropins" / rel
    if packaged.is_file():  # the admin guide's copy says the same
        assert packaged.read_text() == text


BROKEN = [
    ("chatmail-expire.timer.d/bad.conf", "[Timer]\nOnCalendar=someday\n", "someday"),
    ("chatmail-expire.service.d/bad.conf", "[Service]\nNice=banana\n", "banana"),
]


@pytest.mark.parametrize(("rel", "bad", "complaint"), BROKEN)
def test_a_broken_dropin_is_caught(tmp_path, rel, bad, complaint):
    unit_dir = stage(tmp_path / "units")
    (unit_dir / rel).parent.mkdir()
    (unit_dir / rel).write_text(bad)
    result = verify(unit_dir)
    assert complaint in result.stderr


def test_the_schedule_parses():
    result = subprocess.run(
        ["systemd-analyze", "calendar", "daily"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "Normalized form: *-*-* 00:00:00" in result.stdout
