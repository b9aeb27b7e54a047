"""chatmail-setup on a fresh Debian 12 under real systemd: the steps of docs/admin.md.

One booted container for the module (the cached root of test_systemd.py): the .deb installed
with apt-get together with Postfix, Dovecot and nginx, a chatmail.ini, `chatmail-setup` with a
self-signed certificate, then a login over the real stack, a second run, a dry run, an
admin's own Postfix setting and a broken template. Each test builds on the ones before it.
"""

from __future__ import annotations

import json
import re
import secrets

import pytest
from harness.container import Container
from harness.deltachat import deltachat_core_in, verify_and_chat
from package import test_systemd
from package.handback import (
    NOT_HANDED_BACK,
    assert_handed_back,
    hand_back_to_a_literal,
    submit_to_literal,
    wait_deferred,
    wait_handed_back,
)
from package.test_systemd import DOMAIN, MAIL_STACK, _active, _apt, _with_package

pytestmark = pytest.mark.package

CONFIG = test_systemd.CONFIG + "\n[tls]\nself_signed = yes\n"  # the systemd tests' config
WATCHED = (
    "/etc/postfix /etc/dovecot /etc/chatmail /etc/turnserver.conf /etc/nginx /var/lib/chatmail/www"
)
TEMPLATES = "/usr/lib/python3/dist-packages/chatmail_services/templates"
LOGIN = """\
import imaplib, smtplib, ssl, sys
addr, password = sys.argv[1], sys.argv[2]
context = ssl.create_default_context(cafile="/etc/chatmail/tls/fullchain.pem")
imap = imaplib.IMAP4_SSL("{domain}", 993, ssl_context=context)
print(imap.login(addr, password)[0])
print(imap.select("INBOX")[0])
imap.logout()
smtp = smtplib.SMTP("{domain}", 587)
smtp.starttls(context=context)
print(smtp.login(addr, password)[0])
smtp.quit()
"""


@pytest.fixture(scope="module")
def ct(built_deb, tmp_path_factory: pytest.TempPathFactory):
    with _with_package(built_deb, tmp_path_factory.mktemp("container")) as container:
        yield container


def setup(ct: Container, *args: str):
    return ct.run(["chatmail-setup", *args], timeout=300)


def snapshot(ct: Container) -> str:
    """Path, mode, owner, mtime and checksum of every file the setup may touch."""
    return ct.check(
        f"find {WATCHED} -type f -printf '%p %m %u %T@ ' -exec sha256sum {{}} \\; 2>/dev/null"
        " | sort"
    )


def cursor(ct: Container) -> str:
    out = ct.check(["journalctl", "--show-cursor", "-n", "0", "--no-pager"])
    return out.rsplit("-- cursor: ", 1)[1].strip()


def reloads_since(ct: Container, after: str) -> list[str]:
    """systemd's reload lines (and Postfix's and Dovecot's own) since the cursor."""
    out = ct.check(["journalctl", "--after-cursor", after, "--no-pager", "-o", "cat"])
    return [line for line in out.splitlines() if re.search(r"[Rr]eload|SIGHUP", line)]


def test_apt_installs_the_package_with_the_mail_stack(ct):
    ct.check(
        "debconf-set-selections",
        input="postfix postfix/main_mailer_type select Internet Site\n"
        f"postfix postfix/mailname string {DOMAIN}\n",
    )
    _apt(ct, "install", ct.deb, *MAIL_STACK)
    for unit in ("postfix.service", "dovecot.service", "nginx.service", "chatmail-auth.socket"):
        assert _active(ct, unit) == "active", unit
    assert ct.path("/usr/bin/chatmail-setup").exists()
    hook = "/etc/letsencrypt/renewal-hooks/deploy/chatmail-services"
    assert ct.check(["stat", "-c", "%a", hook]).strip() == "755"


def test_setup_refuses_while_debians_default_site_logs_ips(ct):
    ct.path("/etc/chatmail/chatmail.ini").write_text(CONFIG)
    before = snapshot(ct)
    result = setup(ct)
    assert result.returncode != 0
    assert result.stderr.splitlines() == [
        "chatmail-setup: /etc/nginx/sites-enabled/default: Debian's default site logs every "
        "visitor's IP address; remove it (rm /etc/nginx/sites-enabled/default) and run "
        "chatmail-setup again"
    ], result.stderr
    assert snapshot(ct) == before


def test_setup_makes_the_relay(ct):
    ct.check(f"echo '127.0.0.1 {DOMAIN}' >> /etc/hosts")
    ct.check(["rm", "/etc/nginx/sites-enabled/default"])  # docs/admin.md, step 5
    result = setup(ct)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "chatmail-setup: done: tls, postfix, dovecot, nginx (checked, reloaded)" in result.stdout
    assert "+smtpd_milters = unix:chatmail/milter.sock" in result.stdout  # the diff
    assert ct.run(["postfix", "check"]).returncode == 0
    doveconf = ct.run(["doveconf", "-n"])
    assert doveconf.returncode == 0 and doveconf.stderr == "", doveconf.stderr
    # Debian's conf.d (PAM and the system users) is not read: only chatmail-auth's dict
    dbs = re.findall(r"^(passdb|userdb) \{\n(?:  .*\n)*?  driver = (\w+)", doveconf.stdout, re.M)
    assert dbs == [("passdb", "dict"), ("userdb", "dict")], doveconf.stdout
    assert ct.check(["postconf", "-h", "myhostname"]).strip() == DOMAIN
    assert ct.check(["stat", "-c", "%a %U", "/etc/chatmail/tls/privkey.pem"]).split() == [
        "600",
        "root",
    ]
    assert ct.check(["stat", "-c", "%U", "/etc/chatmail/dkim/chatmail.private"]).strip() == "vmail"
    for unit in ("postfix.service", "dovecot.service", "nginx.service"):
        assert _active(ct, unit) == "active", unit
    # the original main.cf is kept beside ours
    assert ct.run("ls /etc/postfix/main.cf.chatmail-setup.bak.*").returncode == 0


def test_a_login_over_the_real_stack_creates_the_account(ct):
    addr = f"{secrets.token_hex(5)[:9]}@{DOMAIN}"
    password = secrets.token_urlsafe(16)
    ct.path("/root/login.py").write_text(LOGIN.format(domain=DOMAIN))
    out = ct.check(["python3", "/root/login.py", addr, password], timeout=120)
    assert out.split() == ["OK", "OK", "235"], out
    stat = ct.check(["stat", "-c", "%U", f"/var/lib/chatmail/mailboxes/{addr}"]).strip()
    assert stat == "vmail"


MXDELIV = """\
import http.client, json, ssl
context = ssl.create_default_context(cafile="/etc/chatmail/tls/fullchain.pem")
MESSAGE = (
    b"From: <alice@sender.example>\\r\\nTo: <someone@{domain}>\\r\\nSubject: hi\\r\\n"
    b"Message-ID: <mxdeliv-pkgtest@sender.example>\\r\\n\\r\\n..dot-stuffed\\r\\n"
)
def post(method, rcpts):
    conn = http.client.HTTPSConnection("{domain}", 443, context=context, timeout=60)
    conn.putrequest(method, "/mxdeliv", skip_accept_encoding=True)
    conn.putheader("x-mail-from", "alice@sender.example")
    for rcpt in rcpts:
        conn.putheader("x-mail-to", rcpt)
    conn.putheader("content-length", str(len(MESSAGE)))
    conn.endheaders(MESSAGE)
    answer = conn.getresponse()
    return answer.status, answer.read().decode()
print(json.dumps([
    post("GET", ["someone@{domain}"]),
    post("POST", ["someone@{domain}", "someone@other.example"]),
    post("POST", ["someone@{domain}"]),
]))
"""


def test_mail_from_another_relay_over_https_is_checked_as_on_port_25(ct):
    """POST /mxdeliv on 443 (the stream, nginx, chatmail-mxdeliv, Postfix's loopback smtpd
    and the milter, all as chatmail-setup and the package set them up): GET is 405, a
    recipient of another domain and an unsigned message are refused as on port 25."""
    ct.path("/root/mxdeliv.py").write_text(MXDELIV.format(domain=DOMAIN))
    answers = json.loads(ct.check(["python3", "/root/mxdeliv.py"], timeout=180))
    get, foreign, unsigned = answers
    assert get[0] == 405, answers
    assert foreign[0] == 400 and foreign[1].startswith("554 5.7.1 <someone@other.example>")
    assert unsigned == [400, "554 5.7.1 No DKIM signature found"], answers
    assert _active(ct, "chatmail-mxdeliv.service") == "active"  # started by the first request


WEB = """\
import json, ssl, sys, urllib.request
context = ssl.create_default_context(cafile="/etc/chatmail/tls/fullchain.pem")
class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args):
        return None
opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), NoRedirect)
def fetch(path, method="GET"):
    body = b"" if method == "POST" else None
    request = urllib.request.Request("https://{domain}" + path, method=method, data=body)
    try:
        with opener.open(request, timeout=30) as answer:
            return answer.status, dict(answer.headers), answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()
print(json.dumps({{path: fetch(path) for path in ("/", "/privacy.html", "/new")}}))
print(json.dumps([fetch("/new", "POST") for _ in range(2)]))
"""


def test_the_home_page_and_new_through_nginx_and_chatmail_web(ct):
    ct.path("/root/web.py").write_text(WEB.format(domain=DOMAIN))
    pages, answers = ct.check(["python3", "/root/web.py"], timeout=120).splitlines()
    pages = json.loads(pages)
    status, _, home = pages["/"]
    assert status == 200 and f"DCACCOUNT:https://{DOMAIN}/new" in home and "<svg" in home
    status, _, privacy = pages["/privacy.html"]
    assert status == 200 and "20 days" in privacy
    status, headers, _ = pages["/new"]
    assert (status, headers["Location"]) == (302, f"dcaccount:https://{DOMAIN}/new")
    assert _active(ct, "chatmail-web.service") == "active"  # started by the first /new
    accounts = []
    for status, _, body in json.loads(answers):
        assert status == 200, body
        answer = json.loads(body)
        assert answer["email"].endswith(f"@{DOMAIN}") and "ic=3" in answer["dclogin_url"]
        assert not ct.path(f"/var/lib/chatmail/mailboxes/{answer['email']}").exists()
        accounts.append(answer)
    ct.answers = accounts
    # nginx keeps no access log; no log names the client's address
    assert not ct.path("/var/log/nginx/access.log").exists() or (
        ct.path("/var/log/nginx/access.log").read_text() == ""
    )


PORT_443 = """\
import socket, ssl, sys
context = ssl.create_default_context(cafile="/etc/chatmail/tls/fullchain.pem")
for alpn in sys.argv[1:]:
    context.set_alpn_protocols([alpn])
    raw = socket.create_connection(("{domain}", 443), timeout=30)
    with context.wrap_socket(raw, server_hostname="{domain}") as tls:
        print(tls.recv(200).split(b"\\r\\n")[0].decode())
"""


def test_imap_and_smtp_on_port_443_by_alpn(ct):
    """chatmail-setup's nginx stream: ALPN imap and smtp on 443 reach Dovecot and Postfix
    (their certificate, verified), while HTTPS on 443 served the pages above."""
    ct.path("/root/port443.py").write_text(PORT_443.format(domain=DOMAIN))
    imap, smtp = ct.check(["python3", "/root/port443.py", "imap", "smtp"], timeout=120).split("\n")[
        :2
    ]
    assert imap.startswith("* OK") and "IMAP4rev1" in imap, imap
    assert smtp.startswith(f"220 {DOMAIN} ESMTP"), smtp
    assert ct.path("/etc/nginx/modules-enabled/60-chatmail-stream.conf").exists()


def test_delta_chat_joins_from_new_and_chats(ct):
    """The real core, run inside the container (its network), configured from /new's
    dclogin_url (the self-signed certificate: ic=3), sends and receives through the relay
    that the package's units and chatmail-setup made."""
    with deltachat_core_in(ct, "/root/dc-accounts") as core:
        accounts = []
        for answer in ct.answers:
            account = core.add_account()
            account.add_transport_from_qr(answer["dclogin_url"])
            assert account.is_configured()
            account.bring_online()
            accounts.append(account)
        for answer in ct.answers:  # the first login created the account
            assert ct.path(f"/var/lib/chatmail/mailboxes/{answer['email']}/password").exists()
        alice, bob = accounts
        verify_and_chat(alice, bob, "hello from a packaged relay")


def test_remote_mail_is_handed_back_to_postfix_through_mxreturn(ct):
    """mxsend under its real unit (vmail, SupplementaryGroups=postdrop, PrivateUsers=yes)
    reaches Postfix's public/mxreturn (Debian's directory: 2710 postfix:postdrop, so only
    group postdrop may enter): a message to an address literal is handed back, and Postfix's
    smtp client tries the destination at once."""
    public = ct.check(["stat", "-c", "%a %U %G", "/var/spool/postfix/public"]).split()
    assert public == ["2710", "postfix", "postdrop"], public
    assert_handed_back(hand_back_to_a_literal(ct, f"{secrets.token_hex(5)[:9]}@{DOMAIN}"))


def test_without_group_postdrop_the_hand_back_is_a_451_and_the_mail_waits(ct):
    """The group is what lets mxsend in: with SupplementaryGroups= reset by a drop-in
    (docs/admin.md's way), mxsend cannot reach public/mxreturn and answers 451, the message
    stays in Postfix's queue; with the unit as shipped again, a queue flush hands it back."""
    dropin = ct.path("/etc/systemd/system/chatmail-mxsend.service.d/no-postdrop.conf")
    dropin.parent.mkdir(parents=True, exist_ok=True)
    dropin.write_text("[Service]\nSupplementaryGroups=\n")
    try:
        ct.check(["systemctl", "daemon-reload"])
        ct.check(["systemctl", "stop", "chatmail-mxsend.service"])  # the socket starts it
        message_id = submit_to_literal(ct, f"{secrets.token_hex(5)[:9]}@{DOMAIN}")
        lines = wait_deferred(ct, message_id)
        assert any("postfix/mxsend/" in line and NOT_HANDED_BACK in line for line in lines)
    finally:
        dropin.unlink()
        ct.check(["systemctl", "daemon-reload"])
        ct.check(["systemctl", "stop", "chatmail-mxsend.service"])
    ct.check(["postqueue", "-f"])
    assert_handed_back(wait_handed_back(ct, message_id), deferred_before=True)


def test_a_second_run_changes_nothing(ct):
    before, after_cursor = snapshot(ct), cursor(ct)
    result = setup(ct)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "chatmail-setup: nothing to change\n"
    assert snapshot(ct) == before
    assert reloads_since(ct, after_cursor) == []


def test_an_admins_own_postfix_setting_survives(ct):
    ct.check(["postconf", "-e", "smtpd_client_connection_rate_limit=30"])
    result = setup(ct)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "chatmail-setup: nothing to change\n"
    assert ct.check(["postconf", "-h", "smtpd_client_connection_rate_limit"]).strip() == "30"


def test_dry_run_shows_the_diff_and_changes_nothing(ct):
    ct.path("/etc/chatmail/chatmail.ini").write_text(
        CONFIG.replace("[auth]", "max_message_size = 20000000\n\n[auth]")
    )
    before, after_cursor = snapshot(ct), cursor(ct)
    result = setup(ct, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "-message_size_limit = 31457280\n+message_size_limit = 20000000\n" in result.stdout
    # main.cf, the pages that state the limit, and nginx's body limit for /mxdeliv
    assert re.search(r"\n\S+: 5 file\(s\) to change \(postfix, nginx\)\n$", result.stdout)
    assert snapshot(ct) == before
    assert reloads_since(ct, after_cursor) == []
    # the same run for real changes main.cf, keeps the old one, and reloads Postfix only
    result = setup(ct)
    assert result.returncode == 0, result.stderr
    assert ct.check(["postconf", "-h", "message_size_limit"]).strip() == "20000000"
    assert any("postfix" in line.lower() for line in reloads_since(ct, after_cursor))
    assert not any("dovecot" in line.lower() for line in reloads_since(ct, after_cursor))


def test_a_broken_template_value_is_reported_and_nothing_is_reloaded(ct):
    broken = ct.path("/root/broken/postfix/main.cf")
    broken.parent.mkdir(parents=True)
    text = ct.path(f"{TEMPLATES}/postfix/main.cf").read_text()
    broken.write_text(text.replace("{{max_message_size}}", "{{max_message_size}}x"))
    before, after_cursor = snapshot(ct), cursor(ct)
    result = setup(ct, "--templates", "/root/broken")
    assert result.returncode == 1
    problems = result.stderr.splitlines()
    assert problems == [
        "chatmail-setup: postfix: postfix check: postfix: fatal: bad numerical configuration: "
        "message_size_limit = 20000000x",
        "chatmail-setup: every file restored as it was; nothing reloaded",
    ], result.stderr
    assert snapshot(ct) == before
    assert reloads_since(ct, after_cursor) == []
    assert _active(ct, "postfix.service") == "active"


def test_the_certbot_hook_reloads_the_services(ct):
    after_cursor = cursor(ct)
    ct.check(["/etc/letsencrypt/renewal-hooks/deploy/chatmail-services"], timeout=120)
    lines = " ".join(reloads_since(ct, after_cursor)).lower()
    assert "postfix" in lines and "dovecot" in lines and "nginx" in lines, lines
    assert ct.state() == "running", ct.run("systemctl --failed").stdout
