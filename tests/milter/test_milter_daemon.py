"""The real daemon: socket activation (the socket on fd 3) driven by miltertest,
the `check` command, and the systemd units."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from chatmail_services.milter import mime
from harness import REPO, VENV_BIN
from harness.activation import ActivatedService
from harness.messages import SWAKS_SAMPLE

from chatmail_services.templating import TEMPLATES

MILTER = str(VENV_BIN / "chatmail-milter")


def lua_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def lua_script(socket: Path, messages: list[dict]) -> str:
    """A miltertest script sending the connection (CONNECT, without reply), then only the
    steps the milter takes (MAIL, RCPT, headers, body, EOM: HELO, DATA and EOH are negotiated
    away) for each message, on one connection, and printing one result line per message.
    CONNECT comes first, as from Postfix: it clears the MAIL macros sent before it."""
    lines = [
        "function check(rc, what) if rc ~= nil then error(what .. ': ' .. rc) end end",
        f'conn = mt.connect("unix:{socket}", 50, 0.1)',
        'if conn == nil then error("connect failed") end',
        'check(mt.conninfo(conn, "localhost", "127.0.0.1"), "conninfo")',
    ]
    for index, m in enumerate(messages):
        macros = ['"i"', lua_string(f"Q{index}")]
        if m.get("login"):
            macros += ['"{auth_authen}"', lua_string(m["login"])]
        lines.append(f"mt.macro(conn, SMFIC_MAIL, {', '.join(macros)})")
        lines.append(f"check(mt.mailfrom(conn, {lua_string('<' + m['sender'] + '>')}), 'mail')")
        lines.append("if mt.getreply(conn) == SMFIR_CONTINUE then")
        lines.append(f"  check(mt.rcptto(conn, {lua_string('<' + m['rcpt'] + '>')}), 'rcpt')")
        for name, value in m["headers"]:
            lines.append(f"  check(mt.header(conn, {lua_string(name)}, {lua_string(value)}), 'h')")
        lines.append(f"  check(mt.bodyfile(conn, {lua_string(str(m['body']))}), 'body')")
        lines.append("  check(mt.eom(conn), 'eom')")
        lines.append("end")
        lines.append("r = mt.getreply(conn)")
        lines.append(
            f'if r == SMFIR_ACCEPT then print("{index} accept") '
            f'elseif r == SMFIR_REPLYCODE then print("{index} reply") '
            f'elseif r == SMFIR_TEMPFAIL then print("{index} tempfail") '
            f'else print("{index} other " .. r) end'
        )
    lines.append("mt.disconnect(conn)")
    return "\n".join(lines) + "\n"


def as_milter_input(data: bytes, tmp: Path, name: str) -> tuple[list[tuple[str, str]], Path]:
    msg = mime.parse_message(data)
    body = tmp / f"{name}.body"
    body.write_bytes(bytes(msg.body))
    return [(n, v) for n, v in msg.headers], body


@pytest.fixture
def milter_config(make_config, tmp_path):
    # about encryption: incoming DKIM off (tests/milter/test_milter_dkim*.py check it)
    config = make_config(chatmail={"mail_domain": "chat.localhost"}, dkim={"verify": "no"})
    mailboxes = Path(config.chatmail.mailboxes_dir)
    for account in ("bob123456@chat.localhost",):
        (mailboxes / account).mkdir()
        (mailboxes / account / "enforceE2EEincoming").touch()
    return config


def run_activated(config, tmp_path: Path, script: str) -> tuple[str, str]:
    """Run the milter socket-activated (harness.activation: the socket on fd 3), drive it with
    miltertest, stop it as systemd does; return miltertest's output and the milter's log."""
    milter = ActivatedService(
        [MILTER, "--config", config.path, "serve"],
        tmp_path / "act.sock",
        log_path=tmp_path / "milter.log",
        cwd=tmp_path,
    )
    with milter:  # __enter__ starts it
        lua = tmp_path / "t.lua"
        lua.write_text(script.replace("@SOCKET@", str(milter.socket_path)))
        result = subprocess.run(
            ["miltertest", "-s", str(lua)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr + result.stdout
        # systemd stops the service with SIGTERM: a clean exit, status 0 (the process is the
        # milter itself: the wrapper execs it)
        assert milter.stop() == 0, milter.log_text()
    return result.stdout, milter.log_text()


def test_socket_activated_daemon_with_miltertest(milter_config, samples, build, tmp_path):
    messages = []
    encrypted = samples["chat-text-alice-to-bob"]
    plain = samples["swaks-plaintext-not-deltachat"]
    secure_join = samples["legacy-vc-request-CLEARTEXT"]
    for name, data, sender, login, rcpt in [
        ("enc", encrypted.data, encrypted.sender, encrypted.sender, "bob123456@chat.localhost"),
        (
            "plain",
            plain.data,
            "swakstest@chat.localhost",
            "swakstest@chat.localhost",
            "bob123456@chat.localhost",
        ),
        ("sj", secure_join.data, secure_join.sender, secure_join.sender, secure_join.rcpt),
        (
            "in-plain",
            build.plain_message(sender="x@other.example", to="b"),
            "x@other.example",
            None,
            "bob123456@chat.localhost",
        ),
        ("in-enc", encrypted.data, "forwarder@other.example", None, "bob123456@chat.localhost"),
        (
            "mismatch",
            encrypted.data,
            "mallory12@chat.localhost",
            "mallory12@chat.localhost",
            "bob123456@chat.localhost",
        ),
    ]:
        headers, body = as_milter_input(data, tmp_path, name)
        messages.append(
            {"sender": sender, "login": login, "rcpt": rcpt, "headers": headers, "body": body}
        )
    stdout, log = run_activated(milter_config, tmp_path, lua_script("@SOCKET@", messages))
    assert stdout.split("\n")[:6] == [
        "0 accept",
        "1 reply",
        "2 accept",
        "3 reply",
        "4 accept",
        "5 reply",
    ], stdout
    assert "listening on fd:3" in log
    assert "Q1: reject 523 5.7.10: outgoing cleartext" in log
    assert "Q3: reject 523 5.7.10: incoming cleartext" in log
    assert "Q5: reject 550 5.7.1: From address differs from envelope sender" in log
    assert "@" not in log  # no addresses at the default log level


def test_daemon_rate_limit_under_activation(make_config, build, tmp_path):
    config = make_config(milter={"max_user_send_burst_size": 2, "max_user_send_per_minute": 1})
    headers, body = as_milter_input(build.secure_join_message(), tmp_path, "sj")
    alice = build.alice
    messages = [
        {"sender": alice, "login": alice, "rcpt": build.bob, "headers": headers, "body": body}
    ] * 3
    stdout, log = run_activated(config, tmp_path, lua_script("@SOCKET@", messages))
    assert stdout.split("\n")[:3] == ["0 accept", "1 accept", "2 reply"], stdout + log
    assert "reject" not in log.split("Q2")[0]
    assert "Q2: tempfail 450 4.7.1: rate limit" in log


def test_serve_on_a_configured_unix_socket(make_config, build, tmp_path):
    config = make_config()
    socket = Path(config.milter.socket)
    proc = subprocess.Popen(
        [MILTER, "--config", config.path, "serve"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        headers, body = as_milter_input(build.plain_message(), tmp_path, "p")
        messages = [
            {
                "sender": build.alice,
                "login": build.alice,
                "rcpt": build.bob,
                "headers": headers,
                "body": body,
            }
        ]
        lua = tmp_path / "t.lua"
        lua.write_text(lua_script(socket, messages))
        result = subprocess.run(
            ["miltertest", "-s", str(lua)], capture_output=True, text=True, timeout=60, cwd=tmp_path
        )
        assert result.stdout.startswith("0 reply"), result.stdout + result.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode in (0, -15)


# -- the check command --


def run_check(config, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MILTER, "--config", config.path, "check", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )


def test_check_command_prints_verdict_and_exit_status(milter_config, samples, tmp_path):
    sample = samples["chat-text-alice-to-bob"]
    path = tmp_path / "m.eml"
    path.write_bytes(sample.data)
    ok = run_check(milter_config, "--sender", sample.sender, "--rcpt", sample.rcpt, str(path))
    assert (ok.returncode, ok.stdout) == (0, "accept\n")
    path.write_bytes(samples[SWAKS_SAMPLE].data)
    bad = run_check(
        milter_config,
        "--sender",
        "swakstest@chat.localhost",
        "--rcpt",
        "bob123456@chat.localhost",
        str(path),
    )
    assert bad.returncode == 1
    assert bad.stdout == "reject 523 5.7.10 Encryption Needed: Invalid Unencrypted Mail\n"
    assert "reason: outgoing cleartext: top level is text/plain" in bad.stderr


def test_check_command_incoming_uses_the_account_marker(milter_config, samples, tmp_path):
    path = tmp_path / "m.eml"
    path.write_bytes(samples[SWAKS_SAMPLE].data)
    enforced = run_check(
        milter_config,
        "--incoming",
        "--sender",
        "x@other.example",
        "--rcpt",
        "bob123456@chat.localhost",
        str(path),
    )
    assert enforced.returncode == 1
    assert enforced.stdout.startswith("reject 523 5.7.10")
    open_box = run_check(
        milter_config,
        "--incoming",
        "--sender",
        "x@other.example",
        "--rcpt",
        "carol1234@chat.localhost",
        "--rcpt",
        "dave@other.example",
        str(path),
    )
    assert (open_box.returncode, open_box.stdout) == (0, "accept\n")
    assert "reason: cleartext to recipients not enforcing encryption" in open_box.stderr
    assert "envelope sender would be changed to <>" in open_box.stderr


def test_check_command_login_mismatch_and_unreadable_file(milter_config, samples, tmp_path):
    path = tmp_path / "m.eml"
    encrypted = samples["chat-text-alice-to-bob"]
    path.write_bytes(encrypted.data)
    result = run_check(
        milter_config,
        "--sender",
        encrypted.sender,
        "--login",
        "other1234@chat.localhost",
        "--rcpt",
        "x@y.example",
        str(path),
    )
    assert result.stdout == "reject 550 5.7.1 Sender address does not match login\n"
    missing = run_check(milter_config, "--sender", "a@b", "--rcpt", "c@d", str(tmp_path / "no"))
    assert missing.returncode == 2
    assert "cannot read" in missing.stderr


# -- systemd units --

UNITS = REPO / "systemd-units"


def test_units_pass_systemd_analyze_verify(tmp_path):
    for name in ("chatmail-milter.socket", "chatmail-milter.service"):
        text = (UNITS / name).read_text().replace("/usr/bin/chatmail-milter", MILTER)
        (tmp_path / name).write_text(text)
    result = subprocess.run(
        [
            "systemd-analyze",
            "verify",
            "--man=no",
            "chatmail-milter.socket",
            "chatmail-milter.service",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_units_wiring_matches_postfix_template_and_sandbox():
    socket = (UNITS / "chatmail-milter.socket").read_text()
    service = (UNITS / "chatmail-milter.service").read_text()
    main_cf = (TEMPLATES / "postfix" / "main.cf").read_text()
    assert "ListenStream=/var/spool/postfix/chatmail/milter.sock" in socket
    assert "smtpd_milters = unix:chatmail/milter.sock" in main_cf
    assert "milter_default_action = tempfail" in main_cf
    assert "{auth_authen}" in main_cf
    for line in ("SocketGroup=postfix", "SocketMode=0660"):
        assert line in socket
    for line in (
        "ExecStart=/usr/bin/chatmail-milter serve",
        "User=vmail",
        "NoNewPrivileges=yes",
        "ReadOnlyPaths=/var/lib/chatmail/mailboxes",
        # Internet sockets for the DNS look-ups of DKIM keys, nothing more exotic
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
    ):
        assert line in service.splitlines(), line
    # the only place written: the metrics file (tests/metrics/test_metrics_units.py)
    writable = [ln for ln in service.splitlines() if ln.startswith("ReadWritePaths")]
    assert writable == ["ReadWritePaths=-/var/lib/prometheus/node-exporter"]
    assert "non_smtpd_milters = unix:chatmail/milter.sock" in main_cf
    assert "{daemon_name}" in main_cf


def test_service_exposure_is_low(tmp_path):
    text = (
        (UNITS / "chatmail-milter.service").read_text().replace("/usr/bin/chatmail-milter", MILTER)
    )
    (tmp_path / "chatmail-milter.service").write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "chatmail-milter.service"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    level = result.stdout.split("Overall exposure level for chatmail-milter.service:")[1]
    assert float(level.split()[0]) <= 2.0
