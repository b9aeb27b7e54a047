"""The Debian package: build, lintian, install with dpkg, run the installed services, purge.

Runs as root on this machine (CI runs the whole suite as root on Debian 12). The build uses a
temporary copy of the repository; the module installs the package once, the tests check it in
order, the last one purges it, and the fixture's finaliser restores the machine even on failure.
systemd is not PID 1 here: the services start as their installed units say, with the unit's
ExecStart, under `systemd-socket-activate` at the unit's ListenStream path, as the unit's User,
inside an emulation of the unit's sandbox (`debtools.sandboxed`). The same package under real
systemd, in a booted Debian 12 container, is test_systemd.py.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import string
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from harness.container import CLEAN_ENV
from package.debtools import (
    PACKAGE,
    REPO,
    dict_exchange,
    dpkg,
    exclusive,
    exec_start,
    exposure,
    json_value,
    last,
    listed_files,
    mode_owner,
    read_unit,
    run,
    sandboxed,
    status,
    stop,
    user_exists,
    wait_for_socket,
)

pytestmark = pytest.mark.package

# the package ships its units here (Debian 13 is merged-/usr only; /lib is /usr/lib on 12 too)
UNIT_DIR = Path("/usr/lib/systemd/system")
MAILBOXES = Path("/var/lib/chatmail/mailboxes")
DIST = Path("/usr/lib/python3/dist-packages")
DOMAIN = "chat.example"
SERVICES = [
    "chatmail-auth.service",
    "chatmail-milter.service",
    "chatmail-metadata.service",
    "chatmail-web.service",
    "chatmail-mxdeliv.service",
    "chatmail-mxsend.service",
    "chatmail-expire.service",
]
COMMANDS = [
    "chatmail-auth",
    "chatmail-milter",
    "chatmail-metadata",
    "chatmail-web",
    "chatmail-mxdeliv",
    "chatmail-mxsend",
    "chatmail-expire",
    "chatmail-dns",
    "chatmail-setup",
    "chatmail-status",
    "chatmail-metrics-collect",
]
STARTED_UNITS = [
    "chatmail-auth.socket",
    "chatmail-milter.socket",
    "chatmail-metadata.socket",
    "chatmail-web.socket",
    "chatmail-mxdeliv.socket",
    "chatmail-mxsend.socket",
    "chatmail-expire.timer",
]
WANTS = {".socket": "sockets.target.wants", ".timer": "timers.target.wants"}
# present while the package on this machine is the one this test installed
OURS = Path("/var/tmp/chatmail-services-package-test.installed")
# paths the test may create; the finaliser removes those that did not exist before
TOUCHED = [
    Path("/etc/chatmail"),
    Path("/run/chatmail"),
    Path("/var/spool/postfix/chatmail"),
    Path("/var/lib/chatmail"),
    Path("/etc/letsencrypt"),  # the certbot hook; purge removes it, this the directories
]


@dataclass
class Installed:
    deb: Path
    lint: list[Path]
    config: Path
    had_vmail: bool
    accounts: list[Path] = field(default_factory=list)
    procs: list[subprocess.Popen] = field(default_factory=list)


def _restore(existed: dict[Path, bool], had_vmail: bool, accounts: list[Path]) -> None:
    if status():
        dpkg("--purge", PACKAGE)
    if not status():
        OURS.unlink(missing_ok=True)
    for account in accounts:
        shutil.rmtree(account, ignore_errors=True)
    for path, was_there in existed.items():
        if not was_there:
            shutil.rmtree(path, ignore_errors=True)
    if not had_vmail and user_exists("vmail"):
        run(["userdel", "vmail"])
    if not had_vmail and run(["getent", "group", "vmail"]).returncode == 0:
        run(["groupdel", "vmail"])


@pytest.fixture(scope="module")
def pkg(built_deb):
    assert os.geteuid() == 0, "the package test installs a package: run it as root"
    with exclusive():
        existed = {path: path.exists() for path in TOUCHED}
        if status():
            # purge only a leftover of an interrupted run of this test, never a real install
            assert OURS.exists(), (
                f"{PACKAGE} is installed on this machine (not by this test): "
                "the package test would replace and purge it, so it refuses to run"
            )
            assert dpkg("--purge", PACKAGE).returncode == 0
        had_vmail = user_exists("vmail")
        deb, lint = built_deb.deb, built_deb.lint
        # a configuration the unit's user can read, as an admin's drop-in would name it
        # (in /run: the services' private /tmp would hide it, as under systemd)
        confdir = Path(tempfile.mkdtemp(prefix="chatmail-pkgtest-", dir="/run"))
        confdir.chmod(0o755)
        config = confdir / "chatmail.ini"
        config.write_text(
            f"[chatmail]\nmail_domain = {DOMAIN}\n\n"
            "[auth]\n# a busy test machine must not refuse creation\n"
            "max_load_1m = 1000\nmin_available_memory = 0\nmin_free_disk = 0\n"
            # the DKIM key beside the config, so that nothing is left in /etc/chatmail/dkim
            f"\n[dkim]\nkey_file = {confdir}/dkim.private\n"
        )
        config.chmod(0o644)
        state = Installed(deb, lint, config, had_vmail)
        try:
            OURS.write_text("installed by tests/package/test_deb.py\n")
            result = dpkg("-i", str(deb))
            assert result.returncode == 0, result.stdout + result.stderr
            yield state
        finally:
            for proc in state.procs:
                stop(proc)
            _restore(existed, had_vmail, state.accounts)
            shutil.rmtree(confdir, ignore_errors=True)


def _installed(pkg: Installed) -> Installed:
    assert status() == "install ok installed", "the package is not installed (any more)"
    return pkg


# -- the build --


def test_lintian_reports_no_errors_and_no_unexplained_warnings(pkg):
    # the source package and the binary build (.changes lists the .deb)
    result = run(["lintian", "--pedantic", "--display-info", *map(str, pkg.lint)])
    tags = [line for line in result.stdout.splitlines() if re.match(r"^[EWX]: ", line)]
    assert tags == [], result.stdout
    assert result.returncode == 0, result.stdout + result.stderr
    # overridden tags are explained: each override line follows a comment
    for overrides in REPO.glob("debian/**/*lintian-overrides"):
        lines = overrides.read_text().splitlines()
        for number, line in enumerate(lines):
            if line.strip() and not line.startswith("#"):
                assert number > 0 and lines[number - 1].startswith("#"), (overrides, line)


def test_depends_on_debian_builds_not_pypi_names(pkg):
    fields = run(["dpkg-deb", "-f", str(pkg.deb), "Depends", "Architecture"]).stdout
    assert "Architecture: all" in fields
    depends = fields.split("Depends:", 1)[1].split("\n")[0]
    names = {d.strip().split()[0] for d in depends.split(",")}
    assert {"python3-milter", "python3-systemd", "adduser"} <= names
    assert not {"python3-pymilter", "python3-systemd-python", "pymilter"} & names


def _units_in(script: str, command: str) -> set[str]:
    """Units named on the lines (with continuations) that run `command`."""
    found: set[str] = set()
    for line in script.replace("\\\n", " ").splitlines():
        if command in line:
            found |= set(re.findall(r"chatmail-[a-z]+\.(?:service|socket|timer)", line))
    return found


def test_maintainer_scripts_start_sockets_and_timer_and_stop_everything(pkg, tmp_path):
    """systemd is not PID 1 here, so its part of the scripts is checked as text."""
    control = tmp_path / "control"
    assert run(["dpkg-deb", "-e", str(pkg.deb), str(control)]).returncode == 0
    postinst = (control / "postinst").read_text()
    prerm = (control / "prerm").read_text()
    postrm = (control / "postrm").read_text()
    assert _units_in(postinst, "deb-systemd-invoke") == set(STARTED_UNITS)
    # (services appear there only to keep an admin's own enablement; the live install below
    # shows none is enabled by the package)
    assert set(STARTED_UNITS) <= _units_in(postinst, "deb-systemd-helper enable")
    assert _units_in(prerm, "deb-systemd-invoke stop") == set(STARTED_UNITS) | set(SERVICES)
    assert set(STARTED_UNITS) <= _units_in(postrm, "deb-systemd-helper purge")
    # the user exists before debhelper's tmpfiles.d snippet chowns directories to it
    assert postinst.index("adduser") < postinst.index("systemd-tmpfiles")


# -- what dpkg installed --


def test_installed_files(pkg):
    files = listed_files()
    expected = {
        "/usr/bin/chatmail-auth",
        "/usr/bin/chatmail-milter",
        "/usr/bin/chatmail-expire",
        "/usr/bin/chatmail-dns",
        "/usr/bin/chatmail-metadata",
        "/usr/bin/chatmail-web",
        "/usr/bin/chatmail-mxdeliv",
        "/usr/bin/chatmail-mxsend",
        "/usr/share/man/man8/chatmail-mxsend.8.gz",
        "/etc/chatmail/chatmail.ini",
        "/usr/lib/tmpfiles.d/chatmail-services.conf",
        "/usr/lib/sysctl.d/60-chatmail-services.conf",
        "/usr/share/man/man8/chatmail-auth.8.gz",
        "/usr/share/man/man8/chatmail-milter.8.gz",
        "/usr/share/man/man8/chatmail-expire.8.gz",
        "/usr/share/man/man8/chatmail-dns.8.gz",
        "/usr/share/man/man8/chatmail-metadata.8.gz",
        "/usr/share/man/man8/chatmail-setup.8.gz",
        "/usr/bin/chatmail-setup",
        "/usr/bin/chatmail-status",
        "/usr/share/man/man8/chatmail-status.8.gz",
        "/usr/share/doc/chatmail-services/operations.md",
        "/usr/share/chatmail-services/prometheus/chatmail-alerts.yml",
        "/etc/letsencrypt/renewal-hooks/deploy/chatmail-services",
        "/usr/share/doc/chatmail-services/setup.md",
        "/usr/share/man/man8/chatmail-web.8.gz",
        "/usr/share/man/man8/chatmail-mxdeliv.8.gz",
        "/usr/share/doc/chatmail-services/https-federation.md",
        "/usr/share/man/man5/chatmail.ini.5.gz",
        "/usr/share/doc/chatmail-services/admin.md",
        "/usr/share/doc/chatmail-services/copyright",
        *(f"{UNIT_DIR}/{unit.name}" for unit in (REPO / "systemd-units").iterdir()),
        *(f"{DIST}/chatmail_services/{sub}/__init__.py" for sub in ("milter", "authsocket")),
        f"{DIST}/chatmail_services/expire/__init__.py",
        f"{DIST}/chatmail_services/metadata/__init__.py",
        f"{DIST}/chatmail_services/web/__init__.py",
        f"{DIST}/chatmail_services/mxdeliv/__init__.py",
        f"{DIST}/chatmail_services/mxsend/__init__.py",
        f"{DIST}/chatmail_services/templates/www/index.html",
        f"{DIST}/chatmail_services/templates/nginx/chatmail.conf",
    }
    assert expected <= files, sorted(expected - files)
    # every module of the repo's subpackages is installed (package_dir survived pybuild)
    folders = ("milter", "authsocket", "expire", "metadata", "dnszone", "relaysetup", "web")
    for folder in (*folders, "mxdeliv", "mxsend", "status"):
        for module in (REPO / folder).glob("*.py"):
            assert f"{DIST}/chatmail_services/{folder}/{module.name}" in files
    # no top-level "milter" from us: python3-milter owns that name
    ours_top = {Path(f).relative_to(DIST).parts[0] for f in files if f.startswith(f"{DIST}/")}
    assert {p for p in ours_top if not p.startswith("chatmail_services")} == set()
    owner = run(["dpkg", "-S", f"{DIST}/milter.cpython-311-x86_64-linux-gnu.so"]).stdout
    assert owner.startswith("python3-milter:")
    conffiles = run(["dpkg-query", "-W", "-f=${Conffiles}", PACKAGE]).stdout
    assert "/etc/chatmail/chatmail.ini" in conffiles
    assert "/etc/letsencrypt/renewal-hooks/deploy/chatmail-services" in conffiles
    shipped = (REPO / "debian" / "chatmail.ini").read_text()
    assert Path("/etc/chatmail/chatmail.ini").read_text() == shipped
    for command in COMMANDS:
        assert Path(f"/usr/bin/{command}").read_text().startswith("#!/usr/bin/python3\n")
        assert run(["man", "-w", "8", command]).stdout.startswith("/usr/share/man/man8/")
    assert run(["man", "-w", "5", "chatmail.ini"]).stdout.startswith("/usr/share/man/man5/")


def test_installed_code_runs_on_debians_python_with_debians_modules(pkg):
    probe = (
        "import Milter, milter, systemd.daemon, chatmail_services, "
        "chatmail_services.milter.adapter, chatmail_services.dictserver, "
        "chatmail_services.expire.scan, chatmail_services.dnszone.cli, dkim, dns.resolver, "
        "cryptography\n"
        "for m in (Milter, milter, systemd.daemon, chatmail_services): print(m.__file__)"
    )
    result = run(["/usr/bin/python3", "-c", probe])
    assert result.returncode == 0, result.stderr
    paths = result.stdout.split()
    assert len(paths) == 4
    assert all(p.startswith(f"{DIST}/") for p in paths), paths
    for command in COMMANDS:
        assert run([f"/usr/bin/{command}", "--help"]).returncode == 0


def test_documentation_links_of_the_units_are_installed(pkg):
    files = listed_files()
    for unit in UNIT_DIR.glob("chatmail-*"):
        for doc in read_unit(unit).get("Unit", {}).get("Documentation", []):
            for uri in doc.split():
                if uri.startswith("file://"):
                    assert uri.removeprefix("file://") in files, f"{unit.name}: {uri}"
                else:
                    assert uri.startswith(("man:", "https://")), f"{unit.name}: {uri}"


def test_system_user_and_directories(pkg):
    _installed(pkg)
    entry = run(["getent", "passwd", "vmail"]).stdout.strip().split(":")
    assert len(entry) == 7, "no user vmail"
    assert int(entry[2]) < 1000, "vmail is not a system user"
    assert entry[6] in ("/usr/sbin/nologin", "/bin/false")
    # the group whose members may run chatmail-status (docs/operations.md)
    group = run(["getent", "group", "chatmail-status"]).stdout.strip().split(":")
    assert len(group) == 4 and int(group[2]) < 1000, "no system group chatmail-status"
    assert mode_owner(Path("/run/chatmail"))[1:] == ("vmail", "vmail")
    assert mode_owner(MAILBOXES) == (0o700, "vmail", "vmail")
    # the milter socket's directory below Postfix's queue is the socket unit's to make, only
    # where Postfix is installed (test_systemd.py checks it under systemd), never tmpfiles'
    tmpfiles = Path("/usr/lib/tmpfiles.d/chatmail-services.conf").read_text()
    assert not [
        line for line in tmpfiles.splitlines() if "/var/spool/postfix" in line.split("#")[0]
    ]


def test_sockets_and_timer_are_enabled_services_are_not(pkg):
    _installed(pkg)
    for unit in STARTED_UNITS:
        link = Path("/etc/systemd/system") / WANTS[Path(unit).suffix] / unit
        assert link.is_symlink(), f"{unit} not enabled"
        # deb-systemd-helper names the unit by the first path it finds it at (/lib on Debian 12)
        assert os.path.realpath(link) == os.path.realpath(UNIT_DIR / unit)
    enabled = {p.name for p in Path("/etc/systemd/system").glob("*.wants/*")}
    assert not set(SERVICES) & enabled


def test_installed_units_verify(pkg):
    _installed(pkg)
    units = sorted(str(p) for p in UNIT_DIR.glob("chatmail-*"))
    assert len(units) == len(list((REPO / "systemd-units").iterdir()))
    result = run(["systemd-analyze", "verify", *units])
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr
    for unit in UNIT_DIR.glob("chatmail-*.socket"):
        parsed = read_unit(unit)
        for key, db in (("SocketUser", "passwd"), ("SocketGroup", "group")):
            name = last(parsed, "Socket", key)
            if name:
                assert run(["getent", db, name]).returncode == 0, f"{unit.name}: {key}={name}"


@pytest.mark.parametrize("service", SERVICES)
def test_installed_service_exposure_at_most_2(pkg, service):
    _installed(pkg)
    assert exposure(UNIT_DIR / service) <= 2.0


# -- the installed services, started as their units say --

SANDBOX_PROBE = r"""
touch /etc/chatmail/probe 2>/dev/null && echo "etc writable"
touch /usr/probe 2>/dev/null && echo "usr writable"
touch {mailboxes}/probe && rm {mailboxes}/probe && echo "mailboxes writable"
[ -z "$(ls -A /tmp)" ] && echo "private tmp"
[ "$(id -un)" = vmail ] && echo "user vmail"
grep -q "^CapBnd:.0000000000000000" /proc/self/status && echo "no capabilities"
grep -q "^NoNewPrivs:.1" /proc/self/status && echo "no new privileges"
[ "$(grep -c : /proc/net/dev)" = 1 ] && echo "no network"
/usr/bin/python3 -c "import socket; socket.socket(socket.AF_UNIX)" && echo "unix sockets"
/usr/bin/python3 -c "import socket; socket.socket(socket.AF_INET)" 2>/dev/null \
    || echo "inet refused"
/usr/bin/python3 -c "import mmap; mmap.mmap(-1, 4096, prot=7)" 2>/dev/null || echo "wx refused"
/usr/bin/python3 -c "import os; os.setpriority(os.PRIO_PROCESS, 0, 5)" 2>/dev/null \
    || echo "setpriority refused"
"""


@pytest.mark.parametrize(
    ("service", "mailboxes_writable"),
    [
        ("chatmail-auth.service", True),
        ("chatmail-milter.service", False),
        ("chatmail-expire.service", True),
        ("chatmail-metadata.service", True),
        ("chatmail-web.service", False),
        ("chatmail-mxdeliv.service", False),
    ],
)
def test_the_sandbox_emulation_denies_what_the_unit_denies(pkg, service, mailboxes_writable):
    """The services below run inside `sandboxed(unit)`: it must really confine them."""
    _installed(pkg)
    probe = SANDBOX_PROBE.format(mailboxes=MAILBOXES)
    result = run([*sandboxed(read_unit(UNIT_DIR / service)), "sh", "-c", probe])
    seen = set(result.stdout.splitlines())
    expected = {
        "private tmp",
        "user vmail",
        "no capabilities",
        "no new privileges",
        "no network",
        "unix sockets",
        "inet refused",  # RestrictAddressFamilies=AF_UNIX
        "wx refused",  # MemoryDenyWriteExecute=yes
        "setpriority refused",  # SystemCallFilter=~@resources
    }
    if service == "chatmail-milter.service":  # DNS look-ups of DKIM keys: AF_INET, AF_INET6
        expected -= {"no network", "inet refused"}
    if mailboxes_writable:
        expected.add("mailboxes writable")
    if service == "chatmail-metadata.service":  # the notifier's HTTPS: network, inet sockets
        expected -= {"no network", "inet refused"}
    if service == "chatmail-mxdeliv.service":  # Postfix's smtpd on 127.0.0.1: AF_INET
        expected -= {"no network", "inet refused"}
    assert seen == expected, result.stdout + result.stderr
    # and outside the sandbox the same probe sees none of it
    outside = set(run(["sh", "-c", probe]).stdout.splitlines())
    run(["rm", "-f", "/etc/chatmail/probe", "/usr/probe"])
    assert outside >= {"etc writable", "usr writable", "unix sockets"}
    assert not outside & {"no network", "inet refused", "wx refused", "setpriority refused"}


def _activate(pkg: Installed, name: str, log: Path) -> tuple[subprocess.Popen, Path]:
    """Start <name>.service under systemd-socket-activate at <name>.socket's path."""
    socket_unit = read_unit(UNIT_DIR / f"{name}.socket")
    service = read_unit(UNIT_DIR / f"{name}.service")
    path = Path(last(socket_unit, "Socket", "ListenStream"))
    assert path.is_absolute(), path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    argv = [
        "systemd-socket-activate",
        "-l",
        str(path),
        "-E",
        f"CHATMAIL_CONFIG={pkg.config}",
        "--",
        *sandboxed(service),
        *exec_start(service),
    ]
    proc = subprocess.Popen(argv, env=CLEAN_ENV, stdout=log.open("w"), stderr=subprocess.STDOUT)
    pkg.procs.append(proc)
    wait_for_socket(path)
    return proc, path


def _local_part() -> str:
    return "pkg" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(6))


def test_auth_lookup_through_the_installed_service(pkg, tmp_path):
    _installed(pkg)
    proc, path = _activate(pkg, "chatmail-auth", tmp_path / "auth.log")
    address = f"{_local_part()}@{DOMAIN}"
    password = secrets.token_hex(12)
    pkg.accounts.append(MAILBOXES / address)
    hello = "H3\t2\t0\t\tauth"
    try:
        # unknown address: N
        assert dict_exchange(path, [hello, f"Lshared/userdb/{address}\t{address}"]) == ["N"]
        # first login creates the account, written by the service as vmail
        reply = dict_exchange(path, [hello, f'Lshared/passdb/{password}"{address}\t{address}'])
        fields = json_value(reply[0])
        assert fields["password"].startswith("{SHA512-CRYPT}$6$")
        assert int(fields["uid"]) == int(run(["id", "-u", "vmail"]).stdout)
        # now the userdb knows it
        fields = json_value(dict_exchange(path, [hello, f"Lshared/userdb/{address}\t{address}"])[0])
        assert fields["home"] == str(MAILBOXES / address)
        assert mode_owner(MAILBOXES / address)[1] == "vmail"
        assert mode_owner(MAILBOXES / address / "password")[1] == "vmail"
    finally:
        log = stop(proc) + (tmp_path / "auth.log").read_text()
    # SIGTERM (systemctl stop) ends it cleanly: exit 0 or death by that signal
    assert proc.returncode in (0, -15), log
    assert "Traceback" not in log, log


def test_device_token_through_the_installed_metadata_service(pkg, tmp_path):
    """An account made by the installed chatmail-auth gets a push token from the installed
    chatmail-metadata, in its sandbox, stored in its home as vmail."""
    _installed(pkg)
    address = f"{_local_part()}@{DOMAIN}"
    pkg.accounts.append(MAILBOXES / address)
    proc, path = _activate(pkg, "chatmail-auth", tmp_path / "auth.log")
    try:
        reply = dict_exchange(path, ["H3\t2\t0\t\tauth", f'Lshared/passdb/pw{address}"{address}\t'])
        assert reply[0].startswith("O"), reply
    finally:
        stop(proc)
    proc, path = _activate(pkg, "chatmail-metadata", tmp_path / "metadata.log")
    key = "priv/" + "0" * 32 + "/devicetoken"
    hello = "H3\t2\t0\t\tmetadata"
    try:
        assert dict_exchange(path, [hello, f"B1\t{address}", f"S1\t{key}\t1111", "C1"]) == ["O"]
        assert dict_exchange(path, [hello, f"L{key}\t{address}"]) == ["O1111"]
        assert mode_owner(MAILBOXES / address / "devicetokens")[:2] == (0o600, "vmail")
    finally:
        log = stop(proc) + (tmp_path / "metadata.log").read_text()
    assert proc.returncode in (0, -15), log
    assert "Traceback" not in log, log


def _http(path: Path, request: bytes) -> bytes:
    """One HTTP exchange over a UNIX socket (as nginx's proxy_pass makes it): the answer."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(30)
        sock.connect(str(path))
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_the_installed_mxdeliv_service_answers_and_fails_closed(pkg, tmp_path):
    """GET is 405; a POST while no Postfix smtpd listens on 127.0.0.1:[federation]
    smtpd_port is a 400 with a 451 body, never a 200."""
    _installed(pkg)
    proc, path = _activate(pkg, "chatmail-mxdeliv", tmp_path / "mxdeliv.log")
    body = b"Subject: x\r\n\r\nhello\r\n"
    post = (
        b"POST /mxdeliv HTTP/1.0\r\nx-mail-from: a@other.example\r\n"
        b"x-mail-to: b@chat.example\r\ncontent-length: %d\r\n\r\n" % len(body)
    ) + body
    try:
        assert _http(path, b"GET /mxdeliv HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 405 ")
        answer = _http(path, post)
    finally:
        log = stop(proc) + (tmp_path / "mxdeliv.log").read_text()
    head, _, text = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), answer
    assert text == b"451 4.3.0 Temporary failure, try again later", answer
    assert proc.returncode in (0, -15), log
    assert "Traceback" not in log, log


CLEARTEXT = (
    "From: <{sender}>\r\nTo: <{rcpt}>\r\nSubject: hello\r\n"
    "Date: Tue, 24 Nov 2026 12:00:00 +0000\r\nMessage-ID: <pkgtest@chat.example>\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n\r\nhello in cleartext\r\n"
)


def test_milter_check_refuses_cleartext_offline(pkg, tmp_path):
    _installed(pkg)
    sender, rcpt = f"{_local_part()}@{DOMAIN}", "someone@elsewhere.example"
    message = tmp_path / "cleartext.eml"
    message.write_bytes(CLEARTEXT.format(sender=sender, rcpt=rcpt).encode())
    message.chmod(0o644)
    result = run(
        [
            "/usr/bin/chatmail-milter",
            "--config",
            str(pkg.config),
            "check",
            "--sender",
            sender,
            "--rcpt",
            rcpt,
            str(message),
        ]
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.startswith("reject 523 5.7.10"), result.stdout


MILTERTEST = """\
-- outgoing cleartext through the installed milter; only the steps the milter negotiates
-- (RCPT and headers are "no reply" steps: nothing to wait for there)
local conn = mt.connect("unix:{path}", 40, 0.25)
if conn == nil then error("cannot connect") end
-- CONNECT first, as from Postfix: miltertest sends one by itself before MAIL otherwise, and
-- that clears the MAIL macros sent before it
if mt.conninfo(conn, "localhost", "127.0.0.1") ~= nil then error("conninfo") end
if mt.macro(conn, SMFIC_MAIL, "{{auth_authen}}", "{sender}", "i", "PKGTEST") ~= nil then
  error("macro")
end
if mt.mailfrom(conn, "<{sender}>") ~= nil then error("mailfrom") end
if mt.getreply(conn) ~= SMFIR_CONTINUE then error("mailfrom not continued") end
if mt.rcptto(conn, "<{rcpt}>") ~= nil then error("rcptto") end
if mt.header(conn, "From", "<{sender}>") ~= nil then error("header") end
if mt.header(conn, "To", "<{rcpt}>") ~= nil then error("header") end
if mt.header(conn, "Subject", "hello") ~= nil then error("header") end
if mt.header(conn, "Content-Type", "text/plain") ~= nil then error("header") end
if mt.bodystring(conn, "hello in cleartext\\r\\n") ~= nil then error("body") end
if mt.eom(conn) ~= nil then error("eom") end
-- a rejection with the milter's own SMTP reply (miltertest cannot show the reply's text;
-- the service's log line gives it)
if mt.getreply(conn) ~= SMFIR_REPLYCODE then error("no reply code at eom") end
mt.echo("verdict: custom reply")
mt.disconnect(conn)
"""


def test_milter_verdict_through_the_installed_service(pkg, tmp_path):
    _installed(pkg)
    # the signing key, made by the installed command for the unit's user (the milter refuses
    # to start without it)
    key = pkg.config.parent / "dkim.private"
    if not key.exists():
        keygen = run(["/usr/bin/chatmail-milter", "--config", str(pkg.config), "dkim-keygen"])
        assert keygen.returncode == 0, keygen.stdout + keygen.stderr
        assert "._domainkey." in keygen.stdout and key.stat().st_mode & 0o777 == 0o600
    proc, path = _activate(pkg, "chatmail-milter", tmp_path / "milter.log")
    sender, rcpt = f"{_local_part()}@{DOMAIN}", "someone@elsewhere.example"
    script = tmp_path / "cleartext.lua"
    script.write_text(MILTERTEST.format(path=path, sender=sender, rcpt=rcpt))
    try:
        result = run(["miltertest", "-s", str(script)], timeout=120)
    finally:
        log = stop(proc) + (tmp_path / "milter.log").read_text()
    assert result.returncode == 0, result.stdout + result.stderr + log
    assert "verdict: custom reply" in result.stdout, result.stdout + log
    assert "PKGTEST: reject 523 5.7.10" in log, log
    assert proc.returncode in (0, -15), log
    assert "Traceback" not in log, log


def test_expire_runs_as_its_unit_says(pkg):
    _installed(pkg)
    service = read_unit(UNIT_DIR / "chatmail-expire.service")
    argv = exec_start(service)
    assert argv[0] == "/usr/bin/chatmail-expire" and "--remove" in argv
    env = {"CHATMAIL_CONFIG": str(pkg.config)}
    result = run([*sandboxed(service), *argv], env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip(), "no summary line"
    # it kept the account the auth test created today
    for account in pkg.accounts:
        assert (account / "password").is_file()


def test_reinstall_keeps_the_admins_config_and_the_user(pkg):
    _installed(pkg)
    conffile = Path("/etc/chatmail/chatmail.ini")
    edited = conffile.read_text() + "\n[expire]\ndelete_mails_after = 14\n"
    conffile.write_text(edited)
    uid = run(["id", "-u", "vmail"]).stdout
    # the upgrade path of the maintainer scripts (prerm upgrade, postinst configure <old>)
    result = dpkg("-i", str(pkg.deb))
    assert result.returncode == 0, result.stdout + result.stderr
    assert conffile.read_text() == edited
    assert run(["id", "-u", "vmail"]).stdout == uid


# -- purge --


def test_purge_removes_config_and_user_but_keeps_mailboxes(pkg):
    _installed(pkg)
    # besides the account the auth test created (if it got that far), one made here
    keep = MAILBOXES / f"{_local_part()}@{DOMAIN}"
    pkg.accounts.append(keep)
    keep.mkdir()
    (keep / "password").write_text("{SHA512-CRYPT}$6$x$y\n")
    for path in (keep, keep / "password"):
        shutil.chown(path, "vmail", "vmail")
    result = dpkg("--purge", PACKAGE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert status() == ""
    assert not Path("/etc/chatmail").exists()
    assert not Path("/usr/bin/chatmail-auth").exists()
    assert not list(UNIT_DIR.glob("chatmail-*"))
    assert not list(Path("/etc/systemd/system").glob("*.wants/chatmail-*"))
    assert not Path("/run/chatmail").exists()
    assert not Path("/var/spool/postfix/chatmail").exists()
    assert not (DIST / "chatmail_services").exists()
    # the user goes if the package made it; the mailboxes always stay
    assert user_exists("vmail") == pkg.had_vmail
    assert run(["getent", "group", "chatmail-status"]).returncode != 0, "its group stayed"
    assert MAILBOXES.is_dir()
    for account in pkg.accounts:
        assert (account / "password").is_file()
