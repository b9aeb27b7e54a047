"""The package under real systemd: Debian 12 and Debian 13 booted in containers, the .deb
(built once, on Debian 12) installed with apt.

For each release the module boots one container (testkit/harness/container.py; its root is
cached) and checks, in order, what an admin's installation goes through: the package without
Postfix (a Recommends), then the mail stack, the sockets and the timer, the services started on
first use inside their real sandboxes, their online exposure, stopping, a drop-in from
docs/admin.md, and last the purge, which must leave only the mailboxes. Each test builds on the
ones before it.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import socket as pysocket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness.container import Container, RootSpec, booted, root_tarball
from package.debtools import REPO, dict_exchange, json_value, run
from package.test_deb import MILTERTEST, _local_part

pytestmark = pytest.mark.package

# the releases the package installs on, and what /etc/debian_version says there
RELEASES = {"bookworm": "12.", "trixie": "13."}
# what a release's root holds besides the package's relations and the mail stack (Debian 13's
# also serves tests/package/test_trixie_relay.py: lintian, and pytest for Python 3.13)
RELEASE_EXTRAS = {"trixie": ("lintian", "python3-pytest", "python3-hypothesis")}
MAIL_STACK = ("postfix", "dovecot-imapd", "dovecot-lmtpd", "nginx")
NODE_EXPORTER = "prometheus-node-exporter"  # the metrics test (Suggests of the package)
ACL = "acl"  # setfacl, with which docs/operations.md lets the services write the exporter's files
SERVICES = (
    "chatmail-auth.service",
    "chatmail-milter.service",
    "chatmail-metadata.service",
    "chatmail-web.service",
    "chatmail-mxdeliv.service",
    "chatmail-mxsend.service",
    "chatmail-expire.service",
)
DOMAIN = "chat.example"
MAILBOXES = "/var/lib/chatmail/mailboxes"
AUTH_SOCKET = "/run/chatmail/auth.sock"
WEB_SOCKET = "/run/chatmail/web.sock"
MXDELIV_SOCKET = "/run/chatmail/mxdeliv.sock"
MILTER_SOCKET = "/var/spool/postfix/chatmail/milter.sock"
MXSEND_SOCKET = "/var/spool/postfix/chatmail/mxsend.sock"
TIMER_STAMP = "/var/lib/systemd/timers/stamp-chatmail-expire.timer"
HELLO = "H3\t2\t0\t\tauth"
CONFIG = f"""\
[chatmail]
mail_domain = {DOMAIN}

[auth]
# a busy test machine must not refuse account creation
max_load_1m = 1000
min_available_memory = 0
min_free_disk = 0
"""


def package_relations(field: str) -> tuple[str, ...]:
    """The binary package's `field` (Depends, Recommends) from debian/control, names only."""
    control = (REPO / "debian" / "control").read_text()
    stanza = control.split("\nPackage:", 1)[1] + "\nEnd:"
    relation = re.search(rf"^{field}:(.*?)^\S", stanza, re.M | re.S)
    assert relation, f"debian/control: no {field}"
    names = [
        alternative.split()[0]
        for entry in relation[1].replace("\n", " ").split(",")
        for alternative in entry.split("|")
        if alternative.strip()
    ]
    return tuple(sorted({n for n in names if not n.startswith("$")}))


def package_depends() -> tuple[str, ...]:
    """The binary package's Depends (names only) from debian/control, and python3."""
    return tuple(sorted({*package_relations("Depends"), "python3"}))


def root_spec(release: str = "bookworm") -> RootSpec:
    """The cached root of the package tests on `release`: what the package (Depends and
    Recommends) and the mail stack need, ready for an offline `apt-get install`."""
    download = {
        *package_depends(),
        *package_relations("Recommends"),
        *MAIL_STACK,
        NODE_EXPORTER,
        ACL,
    }
    return RootSpec(
        release, download=tuple(sorted(download | set(RELEASE_EXTRAS.get(release, ()))))
    )


@contextlib.contextmanager
def _with_package(built_deb, workdir: Path, release: str = "bookworm") -> Iterator[Container]:
    """A booted container of `release` (the cached root with the packages' downloads) and the
    .deb in it.

    The .deb's path inside is `container.deb`, the release `container.release`.
    """
    tarball = root_tarball(root_spec(release))
    with booted(tarball, workdir) as container:
        container.copy_in(built_deb.deb, f"/root/{built_deb.deb.name}")
        container.deb = f"/root/{built_deb.deb.name}"
        container.release = release
        yield container


@pytest.fixture(scope="module", params=list(RELEASES))
def ct(built_deb, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    workdir = tmp_path_factory.mktemp(f"container-{request.param}")
    with _with_package(built_deb, workdir, request.param) as container:
        yield container


def _active(ct: Container, unit: str) -> str:
    return ct.run(["systemctl", "is-active", unit]).stdout.strip()


def _show(ct: Container, unit: str, prop: str) -> str:
    return ct.check(["systemctl", "show", "-P", prop, unit]).strip()


def _journal(ct: Container, unit: str) -> str:
    return ct.run(["journalctl", "--no-pager", "-o", "cat", "-u", unit]).stdout


def _apt(ct: Container, *args: str) -> str:
    result = ct.run(["apt-get", "-y", "-q", *args], timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def test_the_container_boots_debian_with_systemd(ct):
    assert ct.state() == "running", ct.run("systemctl --failed").stdout
    assert ct.check(["cat", "/etc/debian_version"]).startswith(RELEASES[ct.release])
    assert ct.check(["readlink", "/proc/1/exe"]).strip().endswith("/systemd")


# -- installed without Postfix (it is only a Recommends) --


def test_install_without_postfix_leaves_the_system_running(ct):
    output = _apt(ct, "install", "--no-install-recommends", ct.deb)
    ct.path("/etc/chatmail/chatmail.ini").write_text(CONFIG)
    assert "Could not execute systemctl" not in output, output
    assert not ct.path("/usr/sbin/postfix").exists(), "postfix got installed"
    assert ct.state() == "running", ct.run("systemctl --failed; journalctl -b -p err").stdout
    assert _active(ct, "chatmail-auth.socket") == "active"
    assert _active(ct, "chatmail-expire.timer") == "active"
    # the milter socket waits for Postfix: skipped by its condition, not failed
    assert _active(ct, "chatmail-milter.socket") == "inactive"
    assert _show(ct, "chatmail-milter.socket", "ConditionResult") == "no"
    # and nothing of Postfix's was made by the package
    assert not ct.path("/var/spool/postfix").exists()


def test_installing_postfix_later_starts_the_milter_socket(ct):
    # a running Postfix (loopback only); the relay's own settings are not this test's business
    ct.check(
        "debconf-set-selections",
        input="postfix postfix/main_mailer_type select Local only\n"
        f"postfix postfix/mailname string {DOMAIN}\n",
    )
    _apt(ct, "install", *MAIL_STACK)
    assert _active(ct, "chatmail-milter.socket") == "active", _journal(ct, "chatmail-milter.socket")
    stat = ct.check(["stat", "-c", "%a %U %G", MILTER_SOCKET]).split()
    assert stat == ["660", "vmail", "postfix"]
    assert ct.state() == "running", ct.run("systemctl --failed").stdout


# -- the sockets and the timer, the services on first use --


def test_sockets_and_timer_are_active_and_no_service_runs_yet(ct):
    for unit in (
        "chatmail-auth.socket",
        "chatmail-milter.socket",
        "chatmail-metadata.socket",
        "chatmail-web.socket",
        "chatmail-mxdeliv.socket",
        "chatmail-mxsend.socket",
        "chatmail-expire.timer",
    ):
        assert _active(ct, unit) == "active", unit
        assert ct.run(["systemctl", "is-enabled", unit]).stdout.strip() == "enabled"
    for unit in SERVICES:
        assert _active(ct, unit) == "inactive", unit
    assert _show(ct, "chatmail-expire.timer", "NextElapseUSecRealtime")
    stat = ct.check(["stat", "-c", "%a %U %G", AUTH_SOCKET]).split()
    assert stat == ["660", "vmail", "vmail"]


def test_auth_service_starts_on_the_first_lookup(ct):
    address = f"{_local_part()}@{DOMAIN}"
    password = secrets.token_hex(12)
    socket = ct.path(AUTH_SOCKET)
    assert dict_exchange(socket, [HELLO, f"Lshared/userdb/{address}\t{address}"]) == ["N"]
    assert _active(ct, "chatmail-auth.service") == "active"
    reply = dict_exchange(socket, [HELLO, f'Lshared/passdb/{password}"{address}\t{address}'])
    assert json_value(reply[0])["password"].startswith("{SHA512-CRYPT}$6$")
    stat = ct.check(["stat", "-c", "%U %a", f"{MAILBOXES}/{address}/password"]).split()
    assert stat == ["vmail", "600"]


def test_milter_service_starts_on_the_first_connection(ct, tmp_path):
    sender, rcpt = f"{_local_part()}@{DOMAIN}", "someone@elsewhere.example"
    script = tmp_path / "cleartext.lua"
    script.write_text(MILTERTEST.format(path=ct.path(MILTER_SOCKET), sender=sender, rcpt=rcpt))
    result = run(["miltertest", "-s", str(script)], timeout=120)
    journal = _journal(ct, "chatmail-milter.service")
    assert result.returncode == 0, result.stdout + result.stderr + journal
    assert "verdict: custom reply" in result.stdout
    assert _active(ct, "chatmail-milter.service") == "active"
    assert "PKGTEST: reject 523 5.7.10" in journal, journal


def test_web_service_starts_on_the_first_request(ct):
    path = ct.path(WEB_SOCKET)
    stat = ct.check(["stat", "-c", "%a %U %G", WEB_SOCKET]).split()
    assert stat == ["660", "vmail", "www-data"]
    with contextlib.closing(pysocket.socket(pysocket.AF_UNIX)) as sock:
        sock.settimeout(30)
        sock.connect(str(path))
        sock.sendall(b"POST /new HTTP/1.0\r\nHost: chat.example\r\nContent-Length: 0\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), answer + _journal(ct, "chatmail-web.service").encode()
    assert json.loads(body)["email"].endswith(f"@{DOMAIN}")
    assert _active(ct, "chatmail-web.service") == "active"
    # the pages, with Debian's segno (the virtualenv has PyPI's)
    written = ct.check(["chatmail-web", "site", "/var/lib/chatmail/www"]).split()
    assert "/var/lib/chatmail/www/index.html" in written
    assert "<svg " in ct.path("/var/lib/chatmail/www/index.html").read_text()


def test_mxdeliv_service_starts_on_the_first_request(ct):
    """Its socket is nginx's (group www-data); GET is 405 (a POST needs a relay's Postfix:
    tests/mxdeliv)."""
    stat = ct.check(["stat", "-c", "%a %U %G", MXDELIV_SOCKET]).split()
    assert stat == ["660", "vmail", "www-data"]
    with contextlib.closing(pysocket.socket(pysocket.AF_UNIX)) as sock:
        sock.settimeout(30)
        sock.connect(str(ct.path(MXDELIV_SOCKET)))
        sock.sendall(b"GET /mxdeliv HTTP/1.0\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    journal = _journal(ct, "chatmail-mxdeliv.service")
    assert answer.startswith(b"HTTP/1.1 405 "), answer + journal.encode()
    assert _active(ct, "chatmail-mxdeliv.service") == "active"


def test_mxsend_service_starts_on_the_first_lmtp_connection(ct):
    """Postfix's lmtp client connects as group postfix; the service greets in LMTP, offers
    SIZE, and runs with group postdrop (for Postfix's public/mxreturn)."""
    stat = ct.check(["stat", "-c", "%a %U %G", MXSEND_SOCKET]).split()
    assert stat == ["660", "vmail", "postfix"]
    with contextlib.closing(pysocket.socket(pysocket.AF_UNIX)) as sock:
        sock.settimeout(30)
        sock.connect(str(ct.path(MXSEND_SOCKET)))
        reader = sock.makefile("rb")
        greeting = reader.readline()
        sock.sendall(b"LHLO pkgtest\r\n")
        lines = [reader.readline()]
        while lines[-1][3:4] == b"-":
            lines.append(reader.readline())
        sock.sendall(b"QUIT\r\n")
    journal = _journal(ct, "chatmail-mxsend.service")
    assert greeting.startswith(b"220 ") and b"LMTP" in greeting, greeting + journal.encode()
    assert any(line.startswith(b"250-SIZE ") for line in lines), lines
    assert _active(ct, "chatmail-mxsend.service") == "active"
    pid = _show(ct, "chatmail-mxsend.service", "MainPID")
    groups = ct.check(["sh", "-c", f"grep ^Groups: /proc/{pid}/status"]).split()[1:]
    postdrop = ct.check(["getent", "group", "postdrop"]).split(":")[2]
    assert postdrop in groups, groups


def test_expire_service_runs_as_the_timer_would_start_it(ct):
    ct.check(["systemctl", "start", "chatmail-expire.service"], timeout=120)
    assert _show(ct, "chatmail-expire.service", "Result") == "success"
    assert _show(ct, "chatmail-expire.service", "ExecMainStatus") == "0"


# -- chatmail-status on the installed relay (docs/operations.md) --

STATUS_CONFIG = "/etc/chatmail/status-test.ini"
STATUS_CERT = "/etc/chatmail/status-test-tls/fullchain.pem"


def _status_cert(ct: Container, days_valid: int, days_ago: int = 0) -> None:
    """A certificate made by chatmail-setup's own code, at STATUS_CERT in the container."""
    import datetime

    from chatmail_services.relaysetup import tlscert

    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=days_ago)
    cert, _key = tlscert.self_signed(DOMAIN, valid_days=days_valid, now=start)
    path = ct.path(STATUS_CERT)
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(cert)
    path.chmod(0o644)


def _status(ct: Container, *args: str, user: str | None = None):
    """chatmail-status (DNS left out: the container has no network), text and --json."""
    command = ["chatmail-status", "--config", STATUS_CONFIG, "--skip", "dns", *args]
    if user:
        command = ["runuser", "-u", user, "--", *command]
    text = ct.run(command)
    report = ct.run([*command, "--json"])
    assert report.returncode == text.returncode, report.stdout + text.stdout
    return text.returncode, text.stdout + text.stderr, json.loads(report.stdout)


@pytest.fixture
def status_config(ct):
    ct.path(STATUS_CONFIG).write_text(f"{CONFIG}\n[tls]\ncert_file = {STATUS_CERT}\n")
    _status_cert(ct, 90)
    try:
        yield
    finally:
        ct.path(STATUS_CONFIG).unlink()
        ct.check(["rm", "-rf", str(Path(STATUS_CERT).parent)])


def test_status_healthy_then_degraded_without_the_auth_socket_then_broken(ct, status_config):
    code, output, report = _status(ct)
    assert code == 0, output
    assert report["state"] == "ok"
    states = {c["name"]: c["state"] for c in report["checks"]}
    assert states == {**dict.fromkeys(states, "ok"), "dns": "unknown"}, output
    reaper = next(c for c in report["checks"] if c["name"] == "reaper")
    assert reaper["text"].startswith("last run "), output  # the expire test ran it
    assert reaper["data"]["accounts_scanned"] >= 1, output  # its summary line, from the journal
    assert "@" not in output

    ct.check(["systemctl", "stop", "chatmail-auth.socket"])
    try:
        code, output, report = _status(ct)
        assert code == 1, output
        assert report["state"] == "degraded"
        units = next(c for c in report["checks"] if c["name"] == "units")
        assert units["state"] == "degraded"
        assert units["text"].startswith("chatmail-auth.socket stopped (inactive)"), output
    finally:
        ct.check(["systemctl", "start", "chatmail-auth.socket"])

    _status_cert(ct, 10, days_ago=40)
    code, output, report = _status(ct)
    assert code == 2, output
    assert report["state"] == "broken"
    cert = next(c for c in report["checks"] if c["name"] == "certificate")
    assert cert["state"] == "broken" and cert["text"].startswith("expired "), output


def test_status_for_the_group_and_for_others(ct, status_config):
    """A member of chatmail-status sees what needs no root, the rest as unknown; anyone
    else is refused."""
    assert ct.run(["getent", "group", "chatmail-status"]).returncode == 0
    ct.check(["useradd", "-M", "-G", "chatmail-status", "statusmember"])
    ct.check(["useradd", "-M", "statusother"])
    try:
        code, output, report = _status(ct, user="statusmember")
        assert code == 0, output
        states = {c["name"]: c["state"] for c in report["checks"]}
        unknown = {"dns", "postfix-queue", "notify-queue", "accounts"}
        assert {n for n, s in states.items() if s == "unknown"} == unknown, output
        assert set(states.values()) == {"ok", "unknown"}, output
        result = ct.run(["runuser", "-u", "statusother", "--", "chatmail-status"])
        assert result.returncode == 77, result.stdout + result.stderr
    finally:
        ct.check(["userdel", "statusmember"])
        ct.check(["userdel", "statusother"])


# -- the sandboxes as systemd builds them --

# @ is replaced by a tag of the run (the service's journal keeps earlier runs' lines)
PROBE = (
    "for d in / /run /run/chatmail /run/lock /run/systemd /dev/shm /etc /var /var/lib/chatmail "
    f"{MAILBOXES} /tmp /var/tmp /var/spool/postfix; do "
    'f="$d/.probe-$$"; if touch "$f" 2>/dev/null; then rm -f "$f"; echo "@ writable $d"; fi; '
    "done; "
    '[ -e /dev/shm/outside ] && echo "@ shared /dev/shm"; '
    'echo "@ user $(id -un)"; echo "@ end"'
)


def _probe(ct: Container, service: str) -> set[str]:
    """What a shell in the service's own sandbox (an ExecStartPre=) may write and see."""
    dropin = ct.path(f"/run/systemd/system/{service}.d/zz-probe.conf")
    dropin.parent.mkdir(parents=True, exist_ok=True)
    tag = f"probe-{secrets.token_hex(4)}"
    dropin.write_text(f"[Service]\nExecStartPre=/bin/sh -c '{PROBE.replace('@', tag)}'\n")
    try:
        ct.check(["systemctl", "daemon-reload"])
        ct.check(["systemctl", "restart", service], timeout=120)
        for _ in range(50):  # the journal may lag a little behind
            lines = [line for line in _journal(ct, service).splitlines() if line.startswith(tag)]
            if f"{tag} end" in lines:
                break
            time.sleep(0.1)
        assert f"{tag} end" in lines, _journal(ct, service)
    finally:
        dropin.unlink()
        dropin.parent.rmdir()
        ct.check(["systemctl", "daemon-reload"])
    return {line.removeprefix(tag).strip() for line in lines} - {"end"}


@pytest.mark.parametrize(
    ("service", "writes"),
    [
        ("chatmail-auth.service", {MAILBOXES}),
        ("chatmail-milter.service", set()),
        ("chatmail-metadata.service", {MAILBOXES}),  # and its notify-queue (not probed)
        ("chatmail-web.service", set()),
        ("chatmail-mxdeliv.service", set()),
        ("chatmail-mxsend.service", set()),
        ("chatmail-expire.service", {MAILBOXES}),
    ],
)
def test_the_sandbox_lets_a_service_write_only_its_own_places(ct, service, writes):
    ct.check("touch /dev/shm/outside")
    seen = _probe(ct, service)
    private = {"/tmp", "/var/tmp"}  # PrivateTmp=
    assert seen == {"user vmail"} | {f"writable {d}" for d in private | writes}, seen


# and the metrics collector's one-shot job (its timer is not enabled by the package)
@pytest.mark.parametrize("service", [*SERVICES, "chatmail-metrics-collect.service"])
def test_online_exposure_at_most_2_and_as_documented(ct, service):
    result = ct.run(["systemd-analyze", "security", "--no-pager", service])
    match = re.search(rf"Overall exposure level for {service}: (\d+\.\d)", result.stdout)
    assert match, result.stdout + result.stderr
    score = float(match[1])
    assert score <= 2.0
    rows = re.findall(
        r"^\| (chatmail-[\w-]+\.service) \| \d+\.\d \| (\d+\.\d) \|",
        (REPO / "docs" / "security.md").read_text(),
        re.M,
    )
    assert dict(rows).get(service) == match[1], f"docs/security.md: online {service} is {score}"


# -- stopping --


@pytest.mark.parametrize("service", ["chatmail-auth.service", "chatmail-milter.service"])
def test_a_used_service_stops_within_a_second_and_comes_back(ct, service):
    socket = {"chatmail-auth.service": AUTH_SOCKET}.get(service, MILTER_SOCKET)
    with _connected(ct.path(socket)):
        pass  # a connection right before the stop (libmilter's slowest case)
    assert _active(ct, service) == "active"
    start = time.monotonic()
    ct.check(["systemctl", "stop", service], timeout=60)
    seconds = time.monotonic() - start
    assert seconds < 1.0, f"{service} took {seconds:.1f} s to stop"
    assert _show(ct, service, "Result") == "success"
    assert _show(ct, service, "ExecMainStatus") == "0"
    assert _active(ct, service.replace(".service", ".socket")) == "active"
    with _connected(ct.path(socket)):
        pass
    for _ in range(50):
        if _active(ct, service) == "active":
            break
        time.sleep(0.1)
    assert _active(ct, service) == "active"


def _connected(path: Path):
    import socket

    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(10)
    sock.connect(str(path))
    if path.name == "auth.sock":
        sock.sendall((HELLO + "\n").encode())
    return sock


# -- metrics through the node exporter (docs/operations.md) --

SCRAPE = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:9100/metrics').read().decode())"


def _scraped(ct: Container) -> dict[str, float]:
    """chatmail's samples on the node exporter's /metrics, fetched over the container's loopback."""
    text = ct.check(["python3", "-c", SCRAPE])
    return {
        key: float(value)
        for key, _, value in (line.rpartition(" ") for line in text.splitlines())
        if key.startswith("chatmail_")
    }


def test_the_node_exporter_shows_chatmail_auths_counters(ct):
    """The package with prometheus-node-exporter: after a first login that creates an account
    and one refused for its short password, /metrics shows exactly those."""
    if not ct.path("/usr/bin/chatmail-auth").exists():  # this test alone
        _apt(ct, "install", "--no-install-recommends", ct.deb)
        ct.path("/etc/chatmail/chatmail.ini").write_text(CONFIG)
    _apt(ct, "install", "--no-install-recommends", NODE_EXPORTER, ACL)
    textfiles = "/var/lib/prometheus/node-exporter"
    # docs/operations.md: an ACL entry lets the services (vmail) write there
    ct.check(["setfacl", "-m", "u:vmail:rwx", textfiles])
    ct.check(["runuser", "-u", "vmail", "--", "touch", f"{textfiles}/vmail.probe"])
    ct.check(["rm", f"{textfiles}/vmail.probe"])
    config = ct.path("/etc/chatmail/chatmail.ini")
    original = config.read_text()
    config.write_text(original.replace("[chatmail]\n", "[chatmail]\nmetrics_interval = 1\n", 1))
    passdb = "chatmail_auth_passdb_lookups_total"
    try:
        ct.check(["systemctl", "restart", "chatmail-auth.service"])
        for _ in range(100):
            before = _scraped(ct)
            if f'{passdb}{{result="found"}}' in before:
                break
            time.sleep(0.1)
        socket = ct.path(AUTH_SOCKET)
        address = f"{_local_part()}@{DOMAIN}"
        reply = dict_exchange(
            socket, [HELLO, f'Lshared/passdb/{secrets.token_hex(12)}"{address}\t{address}']
        )
        assert reply[0].startswith("O")
        short = f"{_local_part()}@{DOMAIN}"
        assert dict_exchange(socket, [HELLO, f'Lshared/passdb/x"{short}\t{short}']) == ["N"]
        want = {
            f'{passdb}{{result="found"}}': 1,
            f'{passdb}{{result="not_found"}}': 1,
            "chatmail_auth_accounts_created_total": 1,
            'chatmail_auth_creations_refused_total{reason="invalid_password"}': 1,
        }
        for _ in range(100):
            after = _scraped(ct)
            moved = {
                key: after[key] - before.get(key, 0)
                for key in after
                if after[key] != before.get(key, 0) and "_seconds" not in key
            }
            if moved == want:
                break
            time.sleep(0.2)
        assert moved == want
        assert (
            after["chatmail_auth_lookup_seconds_count"]
            - before.get("chatmail_auth_lookup_seconds_count", 0)
            == 2
        )
        assert "@" not in ct.check(["sh", "-c", f"cat {textfiles}/chatmail-*.prom"])
    finally:
        config.write_text(original)
        ct.check(["systemctl", "restart", "chatmail-auth.service"])


# -- a drop-in from docs/admin.md --

DROPINS = REPO / "docs" / "dropins"


def test_a_documented_dropin_takes_effect_after_daemon_reload(ct):
    moved = "/run/dovecot/chatmail-auth.sock"
    dropins = [
        "chatmail-auth.socket.d/path.conf",
        "chatmail-milter.service.d/limits.conf",
        "chatmail-expire.timer.d/schedule.conf",
    ]
    # as admin.md says for a socket's path: stop the socket and its service first (after the
    # reload systemd knows only the new path and would leave the old socket file behind)
    ct.check(["systemctl", "stop", "chatmail-auth.socket", "chatmail-auth.service"])
    for rel in dropins:
        target = ct.path(f"/etc/systemd/system/{rel}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text((DROPINS / rel).read_text())
    try:
        # not before the reload
        assert _show(ct, "chatmail-milter.service", "MemoryMax") == "infinity"
        ct.check(["systemctl", "daemon-reload"])
        assert _show(ct, "chatmail-milter.service", "MemoryMax") == str(512 * 1024 * 1024)
        assert "03:30:00" in _show(ct, "chatmail-expire.timer", "TimersCalendar")
        ct.check(["systemctl", "start", "chatmail-auth.socket"])
        assert not ct.path(AUTH_SOCKET).exists(), "the old socket file stayed"
        reply = dict_exchange(ct.path(moved), [HELLO, f"Lshared/userdb/x@{DOMAIN}\tx@{DOMAIN}"])
        assert reply == ["N"]
    finally:
        ct.check(["systemctl", "stop", "chatmail-auth.socket", "chatmail-auth.service"])
        for rel in dropins:
            ct.path(f"/etc/systemd/system/{rel}").unlink(missing_ok=True)
        ct.check(["systemctl", "daemon-reload"])
        ct.check(["systemctl", "start", "chatmail-auth.socket"])
    assert not ct.path(moved).exists(), "the moved socket file stayed"
    assert ct.path(AUTH_SOCKET).is_socket()


# -- upgrade (the same version again: prerm upgrade, postinst configure) --


def test_reinstall_is_quiet_and_keeps_everything_running(ct):
    output = _apt(ct, "install", "--reinstall", ct.deb)
    assert not re.search(r"(?i)warning|failed|could not", output), output
    for unit in (
        "chatmail-auth.socket",
        "chatmail-milter.socket",
        "chatmail-metadata.socket",
        "chatmail-web.socket",
        "chatmail-mxdeliv.socket",
        "chatmail-expire.timer",
    ):
        assert _active(ct, unit) == "active", unit
    assert ct.path("/etc/chatmail/chatmail.ini").read_text() == CONFIG
    assert ct.state() == "running", ct.run("systemctl --failed").stdout


# -- purge --


def test_purge_leaves_only_the_mailboxes(ct):
    accounts = ct.check(["ls", MAILBOXES]).split()
    assert accounts, "no account from the auth test"
    # the timer's stamp, as the first elapse writes it (Persistent=yes)
    ct.check(["touch", TIMER_STAMP])
    result = ct.run(["apt-get", "-y", "-q", "purge", "chatmail-services"], timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.strip() == "", result.stderr
    assert not re.search(r"(?i)warning|failed|could not", result.stdout), result.stdout
    assert ct.state() == "running", ct.run("systemctl --failed").stdout
    left = ct.check(
        "find / -xdev -path '*chatmail*' -not -path /root/chatmail-services_\\*; "
        "find /run /etc/systemd /var/lib/systemd -path '*chatmail*'"
    ).split()
    assert "/var/lib/chatmail" in left and MAILBOXES in left
    assert [p for p in left if p != "/var/lib/chatmail" and not p.startswith(MAILBOXES)] == []
    for account in accounts:
        assert f"{MAILBOXES}/{account}/password" in left
    assert ct.run(["getent", "passwd", "vmail"]).returncode != 0
    assert ct.run(["getent", "group", "chatmail-status"]).returncode != 0
    units = ct.check(["systemctl", "list-units", "--all", "--plain", "--no-legend", "chatmail*"])
    assert units.strip() == "", units


# -- the usual installation: the package and the mail stack in one apt-get run --


@pytest.fixture(scope="module", params=list(RELEASES))
def ct_at_once(built_deb, tmp_path_factory: pytest.TempPathFactory, request):
    workdir = tmp_path_factory.mktemp(f"container-at-once-{request.param}")
    with _with_package(built_deb, workdir, request.param) as container:
        yield container


def test_installed_together_with_the_mail_stack_every_socket_listens(ct_at_once):
    ct = ct_at_once
    ct.check(
        "debconf-set-selections",
        input="postfix postfix/main_mailer_type select Local only\n"
        f"postfix postfix/mailname string {DOMAIN}\n",
    )
    # the Recommends (Postfix, Dovecot) come along, in whatever order apt configures them
    output = _apt(ct, "install", ct.deb, "nginx")
    assert "Could not execute systemctl" not in output, output
    assert ct.path("/usr/sbin/postfix").exists() and ct.path("/usr/sbin/dovecot").exists()
    for unit in (
        "chatmail-auth.socket",
        "chatmail-milter.socket",
        "chatmail-metadata.socket",
        "chatmail-web.socket",
        "chatmail-mxdeliv.socket",
        "chatmail-mxsend.socket",
        "chatmail-expire.timer",
    ):
        assert _active(ct, unit) == "active", unit + _journal(ct, unit)
    assert ct.state() == "running", ct.run("systemctl --failed").stdout
