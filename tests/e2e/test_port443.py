"""End to end: IMAP, SMTP and HTTPS on one port (the relay's 443, here nginx's HTTPS port of a
whole local relay), told apart by TLS ALPN in nginx's stream (docs/relay.md).

`openssl s_client -alpn imap` / `-alpn smtp` get Dovecot's and Postfix's greetings through it;
the web pages and `/new` are still there; and the real Delta Chat core, configured with that one
port for IMAP and SMTP (it sends the ALPN itself on implicit TLS to ports other than 993 and
465), logs in and chats."""

from __future__ import annotations

import select
import shutil
import subprocess
import urllib.parse
from collections.abc import Iterator

import pytest
from harness import stack_dir
from harness.deltachat import deltachat_core, verify_and_chat
from harness.relay import LocalRelay

pytestmark = pytest.mark.e2e

DOMAIN = "chat.localhost"


@pytest.fixture(scope="module")
def relay() -> Iterator[LocalRelay]:
    root = stack_dir("chatmail-443-")
    relay = LocalRelay(
        root,
        domain=DOMAIN,
        web=True,
        # no DKIM key look-up leaves the machine (nothing answers on port 9)
        config_sections={"dkim": {"resolver": "127.0.0.1:9", "dns_timeout": 1}},
    )
    try:
        with relay:
            yield relay
    except BaseException:
        print(relay.web.nginx.log_text()[-5000:] if relay.web else "")
        print(relay.dovecot.log_text()[-5000:])
        raise
    finally:
        shutil.rmtree(root, ignore_errors=True)


def port_443(relay: LocalRelay) -> int:
    assert relay.web is not None
    return relay.web.nginx.https_port


def greeting(relay: LocalRelay, alpn: str, timeout: float = 20) -> str:
    """The first line the server behind the stream sends, with `alpn` offered by openssl
    s_client."""
    argv = ["openssl", "s_client", "-connect", f"{relay.address}:{port_443(relay)}"]
    argv += ["-alpn", alpn, "-servername", DOMAIN, "-quiet", "-verify_quiet"]
    client = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert client.stdout is not None
        ready, _, _ = select.select([client.stdout], [], [], timeout)
        assert ready, f"no greeting within {timeout} s"
        return client.stdout.readline().decode(errors="replace").rstrip("\r\n")
    finally:
        client.kill()
        client.wait()


@pytest.mark.parametrize("alpn", ["imap", "h2,imap"])
def test_alpn_imap_gets_dovecot(relay, alpn):
    line = greeting(relay, alpn)
    assert line.startswith("* OK") and "IMAP4rev1" in line, line


@pytest.mark.parametrize("alpn", ["smtp", "smtp,imap"])
def test_alpn_smtp_gets_postfix(relay, alpn):
    line = greeting(relay, alpn)
    assert line.startswith(f"220 {DOMAIN} ESMTP"), line


def test_https_still_serves_pages_and_new(relay):
    assert relay.web is not None
    status, _headers, home = relay.web.request("GET", "/")
    assert status == 200 and b"DCACCOUNT:" in home
    status, _headers, autoconfig = relay.web.request(
        "GET", "/.well-known/autoconfig/mail/config-v1.1.xml"
    )
    assert status == 200 and b"<port>443</port>" in autoconfig
    answer = relay.web.new_account()
    assert answer["email"].endswith(f"@{DOMAIN}") and answer["password"]


def dclogin_443(relay: LocalRelay, addr: str, password: str) -> str:
    """A login QR naming the one port for IMAP and SMTP, both implicit TLS."""
    port = port_443(relay)
    query = {"p": password, "v": "1", "ih": relay.address, "ip": port, "is": "ssl"}
    query |= {"sh": relay.address, "sp": port, "ss": "ssl", "ic": "3"}
    return f"dclogin:{addr}?{urllib.parse.urlencode(query)}"


def test_deltachat_core_logs_in_and_chats_over_the_one_port(relay, tmp_path):
    with deltachat_core(tmp_path / "accounts") as core:
        accounts = []
        for _ in range(2):
            credentials = relay.new_credentials()
            account = core.add_account()
            account.add_transport_from_qr(
                dclogin_443(relay, credentials["email"], credentials["password"])
            )
            assert account.is_configured()
            transports = account.list_transports()
            assert {(t["imapPort"], t["smtpPort"]) for t in transports} == {
                (port_443(relay), port_443(relay))
            }, transports
            account.bring_online()
            accounts.append(account)
        alice, bob = accounts
        verify_and_chat(alice, bob, "hello over port 443", "and back")
