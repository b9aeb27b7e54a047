"""A whole relay on Debian 13 (Postfix 3.10, Dovecot 2.4, Python 3.13) under real systemd.

One booted trixie container (its own network: only `lo`) gets the .deb built on Debian 12, the
mail stack with the Lua auth packages (the package's Recommends), and the production Postfix
and Dovecot configuration rendered from the templates, Dovecot's set chosen by the version
found (`render_mail_config`). Then, in order: IMAP logins through Dovecot 2.4's Lua passdb
(the first creates the account, a wrong password changes nothing, the kill switch and too little
headroom are temporary failures), the last login recorded, the milter's 523 through the real
Postfix, two real Delta Chat accounts writing to each other, and the reaper's run.
"""

from __future__ import annotations

import json
import secrets
import string
import time
from pathlib import Path

import pytest
from harness.deltachat import deltachat_core_in, verify_and_chat
from harness.messages import wait_until
from package.handback import assert_handed_back, hand_back_to_a_literal
from package.test_systemd import (
    DOMAIN,
    MAILBOXES,
    _active,
    _apt,
    _journal,
    _show,
    _with_package,
)

pytestmark = pytest.mark.package

CERT = "/etc/ssl/certs/ssl-cert-snakeoil.pem"
KEY = "/etc/ssl/private/ssl-cert-snakeoil.key"
CHATMAIL_INI = "/etc/chatmail/chatmail.ini"
NOCREATE = "/etc/chatmail/nocreate"
QUOTA = 200 * 1024
CONFIG = f"""\
[chatmail]
mail_domain = {DOMAIN}
# small, so that the quota test fills a mailbox quickly
max_mailbox_size = {QUOTA}

[auth]
# a busy test machine must not refuse account creation
max_load_1m = 1000
min_available_memory = 0
min_free_disk = {{min_free_disk}}

[expire]
# the quota test's messages are seconds old
quota_trim_min_age_hours = 0

[tls]
cert_file = {CERT}
key_file = {KEY}
"""
TLS_UNVERIFIED = "ssl._create_unverified_context()"


def render_mail_config(ct) -> str:
    """chatmail-setup, as docs/admin.md has the admin run it (Debian's default nginx site
    removed first); returns the Dovecot template set the installed package picks."""
    ct.check(["rm", "-f", "/etc/nginx/sites-enabled/default"])
    result = ct.run(["chatmail-setup"], timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(checked, reloaded)" in result.stdout, result.stdout
    pick = (
        "from chatmail_services.dovecotversion import dovecot_template_dir, dovecot_version; "
        "print(dovecot_template_dir(dovecot_version()))"
    )
    return ct.check(["python3", "-c", pick]).strip()


IMAP_LOGIN = f"""
import imaplib, ssl, sys
imap = imaplib.IMAP4_SSL("127.0.0.1", 993, ssl_context={TLS_UNVERIFIED}, timeout=30)
try:
    imap.login(sys.argv[1], sys.argv[2])
except imaplib.IMAP4.error as error:
    print("NO", error)
else:
    print("OK")
    imap.logout()
"""

SUBMIT_CLEARTEXT = f"""
import smtplib, ssl, sys
from email.message import EmailMessage
message = EmailMessage()
message["From"], message["To"], message["Subject"] = sys.argv[1], sys.argv[3], "hi"
message.set_content("no encryption here")
with smtplib.SMTP_SSL("127.0.0.1", 465, context={TLS_UNVERIFIED}, timeout=60) as smtp:
    smtp.login(sys.argv[1], sys.argv[2])
    try:
        smtp.send_message(message)
    except smtplib.SMTPResponseException as error:
        print(error.smtp_code, error.smtp_error.decode())
    else:
        print(250)
"""


def _address() -> str:
    local = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(9))
    return f"{local}@{DOMAIN}"


def _login(ct, address: str, password: str) -> str:
    return ct.check(["python3", "-c", IMAP_LOGIN, address, password], timeout=120).strip()


def _write_config(ct, min_free_disk: str = "0") -> None:
    """chatmail.ini; chatmail-auth reads it when it starts: stop it, the next lookup starts it."""
    ct.path(CHATMAIL_INI).write_text(CONFIG.format(min_free_disk=min_free_disk))
    ct.check(["systemctl", "stop", "chatmail-auth.service"])


@pytest.fixture(scope="module")
def relay(built_deb, tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("trixie-relay")
    with _with_package(built_deb, workdir, "trixie") as ct:
        ct.check(
            "debconf-set-selections",
            input="postfix postfix/main_mailer_type select Internet Site\n"
            f"postfix postfix/mailname string {DOMAIN}\n",
        )
        # the Recommends (Postfix, Dovecot, the Lua auth packages) come along
        output = _apt(ct, "install", ct.deb)
        assert "Could not execute systemctl" not in output, output
        ct.path(CHATMAIL_INI).write_text(CONFIG.format(min_free_disk="0"))
        ct.template_dir = render_mail_config(ct)
        yield ct


def test_the_setup_renders_dovecot_24s_templates_and_both_parsers_are_clean(relay):
    ct = relay
    assert ct.check(["cat", "/etc/debian_version"]).startswith("13.")
    assert ct.check(["dovecot", "--version"]).startswith("2.4.")
    assert ct.template_dir == "dovecot24"
    doveconf = ct.run(["doveconf", "-n"])
    assert doveconf.returncode == 0 and doveconf.stderr == "", doveconf.stderr
    assert "passdb lua {" in doveconf.stdout and "userdb lua {" in doveconf.stdout
    assert "socket_path = /run/chatmail/metadata.sock" in doveconf.stdout
    postconf = ct.run(["postconf", "-n"])
    assert postconf.returncode == 0 and postconf.stderr == "", postconf.stderr
    assert "smtpd_milters = unix:chatmail/milter.sock" in postconf.stdout
    assert ct.check(["postconf", "-h", "mail_version"]).startswith("3.10.")
    for unit in ("dovecot.service", "postfix.service", "chatmail-milter.socket"):
        assert _active(ct, unit) == "active", unit
    assert ct.state() == "running", ct.run("systemctl --failed").stdout


PORT_443 = f"""
import socket, ssl, sys
for alpn in sys.argv[1:]:
    context = {TLS_UNVERIFIED}
    if alpn != "-":
        context.set_alpn_protocols([alpn])
    with context.wrap_socket(socket.create_connection(("127.0.0.1", 443), timeout=30)) as tls:
        if alpn == "-":
            tls.sendall(b"GET / HTTP/1.1\\r\\nHost: {DOMAIN}\\r\\nConnection: close\\r\\n\\r\\n")
        print(tls.recv(200).split(b"\\r\\n")[0].decode())
"""


def test_port_443_carries_imap_smtp_and_https_by_alpn(relay):
    """nginx's stream from chatmail-setup (libnginx-mod-stream from the package's
    Recommends) on Debian 13: IMAP and SMTP greetings by ALPN, the web pages without."""
    imap, smtp, https = relay.check(
        ["python3", "-c", PORT_443, "imap", "smtp", "-"], timeout=120
    ).splitlines()
    assert imap.startswith("* OK") and "IMAP4rev1" in imap, imap
    assert smtp.startswith(f"220 {DOMAIN} ESMTP"), smtp
    assert https.startswith("HTTP/1.1 200"), https


MXDELIV = f"""
import http.client, json, ssl
MESSAGE = (
    b"From: <alice@sender.example>\\r\\nTo: <someone@{DOMAIN}>\\r\\nSubject: hi\\r\\n"
    b"Message-ID: <mxdeliv-trixie@sender.example>\\r\\n\\r\\n..dot-stuffed\\r\\n"
)
def post(method, rcpts):
    conn = http.client.HTTPSConnection("127.0.0.1", 443, context={TLS_UNVERIFIED}, timeout=60)
    conn.putrequest(method, "/mxdeliv", skip_host=True, skip_accept_encoding=True)
    conn.putheader("host", "{DOMAIN}")
    for rcpt in rcpts:
        conn.putheader("x-mail-to", rcpt)
    conn.putheader("content-length", str(len(MESSAGE)))
    conn.endheaders(MESSAGE)
    answer = conn.getresponse()
    return answer.status, answer.read().decode()
print(json.dumps([
    post("GET", ["someone@{DOMAIN}"]),
    post("POST", ["someone@{DOMAIN}", "someone@other.example"]),
    post("POST", ["someone@{DOMAIN}"]),
]))
"""


def test_mail_from_another_relay_over_https_is_checked_under_python_3_13(relay):
    """POST /mxdeliv on 443 (a bounce: no x-mail-from) through nginx, chatmail-mxdeliv on
    Python 3.13, Postfix 3.10's loopback smtpd and the milter: 405, relay access denied, and
    the unsigned message refused as on port 25."""
    get, foreign, unsigned = json.loads(relay.check(["python3", "-c", MXDELIV], timeout=180))
    assert get[0] == 405, get
    assert foreign[0] == 400 and foreign[1].startswith("554 5.7.1 <someone@other.example>")
    assert unsigned == [400, "554 5.7.1 No DKIM signature found"], unsigned
    assert _active(relay, "chatmail-mxdeliv.service") == "active"


IMAP_CAPABILITY = f"""
import imaplib, ssl, sys
imap = imaplib.IMAP4_SSL("127.0.0.1", 993, ssl_context={TLS_UNVERIFIED}, timeout=30)
imap.login(sys.argv[1], sys.argv[2])
print(imap.capability()[1][0].decode())
imap.logout()
"""


def test_compress_is_not_offered_by_default_under_dovecot_24(relay):
    """[imap] compress = no: Dovecot 2.4 (COMPRESS built in) leaves it out of CAPABILITY."""
    address, password = _address(), secrets.token_urlsafe(15)
    caps = relay.check(["python3", "-c", IMAP_CAPABILITY, address, password], timeout=120)
    assert "XCHATMAIL" in caps.split() and "IDLE" in caps.split(), caps
    assert "COMPRESS=DEFLATE" not in caps.split(), caps


# -- logins over Dovecot 2.4 --


@pytest.fixture(scope="module")
def account(relay) -> tuple[str, str]:
    address, password = _address(), secrets.token_urlsafe(15)
    assert _login(relay, address, password) == "OK"
    return address, password


def test_the_first_login_creates_the_account(relay, account):
    address, password = account
    home = f"{MAILBOXES}/{address}"
    assert relay.check(["cat", f"{home}/password"]).startswith("{SHA512-CRYPT}$6$")
    assert relay.run(["test", "-e", f"{home}/enforceE2EEincoming"]).returncode == 0
    assert relay.check(["stat", "-c", "%U", f"{home}/password"]).strip() == "vmail"
    assert _login(relay, address, password) == "OK"  # and it logs in again


def test_a_wrong_password_changes_nothing(relay, account):
    address, password = account
    path = f"{MAILBOXES}/{address}/password"
    before = relay.check(["stat", "-c", "%Y %s", path]) + relay.check(["cat", path])
    reply = _login(relay, address, password + "x")
    assert reply.startswith("NO") and "AUTHENTICATIONFAILED" in reply, reply
    assert relay.check(["stat", "-c", "%Y %s", path]) + relay.check(["cat", path]) == before
    assert _login(relay, address, password) == "OK"


def test_the_last_login_is_recorded_by_day(relay, account):
    address, password = account
    path = f"{MAILBOXES}/{address}/password"
    relay.check(["touch", "-d", "@86400", path])  # last seen on day 1 of 1970
    assert _login(relay, address, password) == "OK"
    today = int(time.time()) // 86400 * 86400

    def recorded() -> bool:
        return int(relay.check(["stat", "-c", "%Y", path])) == today

    assert wait_until(recorded), relay.check(["stat", "-c", "%Y", path])


def test_the_kill_switch_is_a_temporary_failure(relay, account):
    address = _address()
    relay.check(["touch", NOCREATE])
    try:
        reply = _login(relay, address, secrets.token_urlsafe(15))
        assert reply.startswith("NO") and "[UNAVAILABLE]" in reply, reply
        assert relay.run(["test", "-e", f"{MAILBOXES}/{address}"]).returncode != 0
        assert "nocreate file exists" in _journal(relay, "chatmail-auth.service")
        assert _login(relay, *account) == "OK"  # existing accounts keep working
    finally:
        relay.check(["rm", "-f", NOCREATE])
    assert _login(relay, address, secrets.token_urlsafe(15)) == "OK"  # and after it


def test_too_little_headroom_is_a_temporary_failure(relay, account):
    address = _address()
    _write_config(relay, min_free_disk="1000000T")
    try:
        assert _login(relay, *account) == "OK"  # the new responder answers
        reply = _login(relay, address, secrets.token_urlsafe(15))
        assert reply.startswith("NO") and "[UNAVAILABLE]" in reply, reply
        assert relay.run(["test", "-e", f"{MAILBOXES}/{address}"]).returncode != 0
        assert "too little free disk" in _journal(relay, "chatmail-auth.service")
    finally:
        _write_config(relay)
    assert _login(relay, address, secrets.token_urlsafe(15)) == "OK"


# -- the quota (2.4: quota_storage_size from the userdb reply, the warning at 75 %) --

LMTP_DELIVER = """
import smtplib, sys
message = "Subject: filler\\r\\n\\r\\n" + ("x" * 76 + "\\r\\n") * 200  # about 16 KiB
with smtplib.LMTP("/run/dovecot/lmtp", timeout=60) as lmtp:
    lmtp.sendmail("friend@elsewhere.example", [sys.argv[1]], message)
"""


def test_crossing_75_percent_of_the_quota_trims_that_mailbox_at_once(relay):
    address, password = _address(), secrets.token_urlsafe(15)
    assert _login(relay, address, password) == "OK"
    home = relay.path(f"{MAILBOXES}/{address}")

    def files() -> list[Path]:
        return [p for p in home.glob("*/*") if p.parent.name in ("new", "cur")]

    def stored() -> int:
        return sum(p.stat().st_size for p in files())

    delivered = 0
    while stored() <= QUOTA * 0.75:  # 16 KiB each: past 75 % of 200 KiB after 10
        assert delivered < 12, (delivered, stored())
        relay.check(["python3", "-c", LMTP_DELIVER, address], timeout=60)
        delivered += 1
    assert wait_until(lambda: stored() <= QUOTA * 0.70, timeout=30), (
        stored(),
        _journal(relay, "dovecot.service")[-3000:],
    )
    assert 0 < len(files()) < delivered


# -- Postfix 3.10 and the milter --


def test_cleartext_submission_gets_the_milters_523(relay, account):
    address, password = account
    rcpt = "someone@elsewhere.example"
    reply = relay.check(["python3", "-c", SUBMIT_CLEARTEXT, address, password, rcpt], timeout=120)
    assert reply.startswith("523 "), reply + relay.run("journalctl -b -n 50 -o cat").stdout
    assert "Encryption" in reply, reply


def test_remote_mail_is_handed_back_to_postfix_through_mxreturn(relay):
    """Debian 13's systemd and Postfix 3.10: mxsend (PrivateUsers=yes, group postdrop) hands
    a message to an address literal to public/mxreturn; the smtp client tries it at once."""
    assert_handed_back(hand_back_to_a_literal(relay, _address()))


# -- Delta Chat --


@pytest.fixture(scope="module")
def deltachat(relay):
    """The Delta Chat core inside the container (the static deltachat-rpc-server binary,
    entered with nsenter), so that it reaches the relay on the container's loopback."""
    with deltachat_core_in(relay) as core:
        yield core


def _transport(address: str, password: str) -> dict[str, object]:
    return {
        "addr": address,
        "password": password,
        "imapServer": "127.0.0.1",
        "imapPort": 993,
        "imapSecurity": "ssl",
        "smtpServer": "127.0.0.1",
        "smtpPort": 465,
        "smtpSecurity": "ssl",
        "certificateChecks": "acceptInvalidCertificates",
    }


@pytest.fixture(scope="module")
def pair(relay, deltachat):
    accounts = []
    for _ in range(2):
        address, password = _address(), secrets.token_urlsafe(15)
        account = deltachat.add_account()
        account.add_or_update_transport(_transport(address, password))  # the first login
        account.bring_online()
        accounts.append((account, address))
    return accounts


def test_delta_chat_accounts_send_and_receive(relay, pair):
    (alice, alice_address), (bob, bob_address) = pair
    for address in (alice_address, bob_address):
        assert relay.check(["cat", f"{MAILBOXES}/{address}/password"]).startswith("{SHA512")
    verify_and_chat(bob, alice, "hello bob, from Debian 13", "hello alice")


# -- the reaper --


def test_the_reaper_expires_an_old_message(relay, account):
    address, _ = account
    cur = f"{MAILBOXES}/{address}/cur"
    delivered = int(time.time()) - 30 * 86400  # older than delete_mails_after (20 days)
    old, fresh = (
        f"{cur}/{delivered}.M1P1.trixie,S=6:2,S",
        f"{cur}/{int(time.time())}.M2P1.trixie,S=6:2,S",
    )
    for path, stamp in ((old, delivered), (fresh, int(time.time()))):
        relay.check(
            [
                "setpriv",
                "--reuid=vmail",
                "--regid=vmail",
                "--clear-groups",
                "sh",
                "-c",
                f"mkdir -p {cur} && echo hello > {path} && touch -d @{stamp} {path}",
            ]
        )
    relay.check(["systemctl", "start", "chatmail-expire.service"], timeout=300)
    assert _show(relay, "chatmail-expire.service", "Result") == "success"
    assert relay.run(["test", "-e", old]).returncode != 0, "the old message is still there"
    assert relay.run(["test", "-e", fresh]).returncode == 0, "the fresh message is gone"


# -- Python 3.13 --


def test_every_module_imports_under_python_3_13(relay):
    script = (
        "import importlib, pkgutil, sys, chatmail_services\n"
        "names = [m.name for m in pkgutil.walk_packages(chatmail_services.__path__, "
        "'chatmail_services.')]\n"
        "for name in names: importlib.import_module(name)\n"
        "print(sys.version_info[:2], len(names))\n"
    )
    out = relay.check(["python3", "-c", script])
    version, count = out.rsplit(" ", 1)
    assert version == "(3, 13)" and int(count) > 20, out


def test_json_reply_of_the_responder_under_python_3_13(relay, account):
    """The installed chatmail-auth (Python 3.13) answers a userdb lookup with both quota
    fields (2.4 reads quota_storage_size)."""
    address, _ = account
    script = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX); s.connect('/run/chatmail/auth.sock')\n"
        "s.sendall(f'H3\\t2\\t0\\t\\tauth\\nLshared/userdb/{sys.argv[1]}\\t{sys.argv[1]}\\n'.encode())\n"
        "print(s.makefile().readline().strip())\n"
    )
    reply = relay.check(["python3", "-c", script, address])
    fields = json.loads(reply[1:])
    assert reply.startswith("O") and fields["home"] == f"{MAILBOXES}/{address}", reply
    assert "quota_storage_size" in fields, fields


# -- lintian --

# Debian 12's lintian wants these overrides (a socket-activated .service without an init.d
# script); Debian 13's lintian no longer has the tag and calls an override of it an alien tag.
# One override file cannot satisfy both: this is the only thing Debian 13's lintian may say.
BOOKWORM_ONLY_OVERRIDE = "alien-tag package-supports-alternative-init-but-no-init.d-script"


def test_lintian_of_debian_13_finds_nothing_else(relay, built_deb):
    _apt(relay, "install", "--no-install-recommends", "lintian")  # from the root's downloads
    build_dir = built_deb.deb.parent
    for path in build_dir.glob("chatmail-services_*"):
        if path.is_file():
            relay.copy_in(path, f"/root/lint/{path.name}")
    names = [f"/root/lint/{path.name}" for path in built_deb.lint]
    result = relay.run(["lintian", "--pedantic", "--display-info", *names], timeout=600)
    assert result.returncode in (0, 1, 2), result.stdout + result.stderr
    tags = [line for line in result.stdout.splitlines() if line[:3] in ("E: ", "W: ", "X: ")]
    unexpected = [line for line in tags if BOOKWORM_ONLY_OVERRIDE not in line]
    assert unexpected == [], result.stdout


# -- push: only a delivery notifies (the LMTP hook's own dict under Dovecot 2.4) --

METADATA_OR_LMTP = f"""
import imaplib, smtplib, ssl, sys
address, password, what = sys.argv[1:4]
if what == "deliver":
    message = f"From: <friend@elsewhere.example>\\r\\nTo: <{{address}}>\\r\\n\\r\\nhi\\r\\n"
    with smtplib.LMTP("/run/dovecot/lmtp") as lmtp:
        lmtp.sendmail("friend@elsewhere.example", [address], message)
    print("OK")
else:
    imap = imaplib.IMAP4_SSL("127.0.0.1", 993, ssl_context={TLS_UNVERIFIED}, timeout=30)
    imap.login(address, password)
    print(imap.xatom("SETMETADATA", what)[0])
    imap.logout()
"""
NOTIFY_QUEUE = "/var/lib/chatmail/notify-queue"


def test_only_a_delivery_queues_a_notification_under_dovecot_24(relay):
    """A client's SETMETADATA of the push hook's key is refused and queues nothing; one
    delivery over LMTP queues one notification for the account's token (the container has
    no network, so it stays queued)."""
    address, password = _address(), secrets.token_urlsafe(15)
    assert _login(relay, address, password) == "OK"
    queue = relay.path(NOTIFY_QUEUE)

    def run(what: str) -> str:
        argv = ["python3", "-c", METADATA_OR_LMTP, address, password, what]
        return relay.check(argv, timeout=120).strip()

    before = set(queue.glob("*.json"))
    assert run('"INBOX" (/private/devicetoken "tokTrixie")') == "OK"
    for key in ("/private/messagenew", "/PRIVATE/MessageNew"):
        assert run(f'"INBOX" ({key} "1")') == "NO"
    assert set(queue.glob("*.json")) == before
    assert run("deliver") == "OK"
    new = wait_until(lambda: set(queue.glob("*.json")) - before)
    assert [json.loads(path.read_text())["token"] for path in new] == ["tokTrixie"]


# what Dovecot 2.4 logs at warning level or above in this module, and why
EXPECTED_DOVECOT_LOG = (
    "master: Warning: Killed with signal 15",  # the restart after the package's installation
    "master: Warning: SIGHUP received - reloading configuration",  # chatmail-setup's reload
    "chatmail-auth: account creation disabled (nocreate file exists)",  # the kill switch
    "chatmail-auth: too little free disk",  # the headroom test
    "this metadata key is read-only",  # the client's refused messagenew (push test)
)


def test_dovecot_logged_no_error_but_the_refusals(relay):
    """Every delivery above ran push_notification.lua, every login chatmail-auth.lua: under
    Dovecot 2.4 neither may have logged an error (the refusals' temporary failures aside)."""
    journal = ["journalctl", "-b", "-u", "dovecot.service", "-p", "warning", "-o", "cat"]
    lines = relay.check(journal).splitlines()
    unexpected = [line for line in lines if not any(e in line for e in EXPECTED_DOVECOT_LOG)]
    assert unexpected == [], "\n".join(lines)
    for refusal in EXPECTED_DOVECOT_LOG[1:]:
        assert any(refusal in line for line in lines), "\n".join(lines)
