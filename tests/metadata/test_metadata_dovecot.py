"""chatmail-metadata behind real Dovecot 2.3 (the local relay, services as their units say):
SETMETADATA/GETMETADATA over IMAP as Delta Chat sends them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from chatmail_services.metadata import appversions
from harness import stack_dir
from harness.imap import Imap
from harness.relay import LocalRelay

from chatmail_services import layout

pytestmark = pytest.mark.stack

DOMAIN = "chat.localhost"
PASSWORD = "metadata-test-password"
TURN_SECRET = "north-wind-turn-secret"
SERVER_KEYS = ("maxsmtprecipients", "irohrelay", "turn", "appversions")
CLIENT_GET = (
    "/shared/comment /shared/admin /shared/vendor/deltachat/irohrelay "
    "/shared/vendor/deltachat/turn /shared/vendor/deltachat/maxsmtprecipients "
    "/shared/vendor/deltachat/appversions"
)
APP_VERSIONS = {  # an admin's own list
    "clients": [
        {
            "clientId": "deltachat",
            "sources": [
                {
                    "sourceId": "gplay",
                    "versionInteger": 9999,
                    "versionString": "9.9.9",
                    "downloadUrl": "https://download.example/dc-9.9.9.apk",
                }
            ],
        }
    ]
}


def _relay(sections: dict[str, dict[str, object]]) -> Iterator[LocalRelay]:
    root = stack_dir("chatmail-metadata-")
    relay = LocalRelay(root, domain=DOMAIN, milter=False, config_sections=sections)
    try:
        with relay:
            yield relay
            log = relay.service_logs()
            assert "Traceback" not in log and "ERROR" not in log, log
            assert f"@{DOMAIN}" not in log, log  # addresses only at debug level
            assert "1111" not in log, log  # nor tokens
    except BaseException:
        print(relay.service_logs()[-20000:], relay.dovecot.log_text()[-20000:])
        raise
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def relay() -> Iterator[LocalRelay]:
    """Every server key configured."""
    root_files = Path(stack_dir("chatmail-metadata-files-"))
    secret = root_files / "turn-secret"
    secret.write_text(TURN_SECRET + "\n")
    versions = root_files / "appversions.json"
    versions.write_text(json.dumps(APP_VERSIONS, indent=2) + "\n")
    for path in (secret, versions):
        path.chmod(0o644)
    sections = {
        "chatmail": {"max_recipients": 77},
        "metadata": {
            "max_tokens": 3,
            "iroh_relay": "https://iroh.chat.localhost/",
            "turn_host": "turn.chat.localhost",
            "turn_port": 3478,
            "turn_secret_file": secret,
            "turn_credential_lifetime": 86400,
            "app_versions_file": versions,
        },
        "web": {"operator_contact": f"ops@{DOMAIN}"},
    }
    yield from _relay(sections)
    shutil.rmtree(root_files, ignore_errors=True)


@pytest.fixture(scope="module")
def bare_relay() -> Iterator[LocalRelay]:
    """No optional server key configured; the app versions file does not exist (so the list
    shipped with the package is served)."""
    yield from _relay({"metadata": {"app_versions_file": "/nonexistent/appversions.json"}})


def login(relay: LocalRelay, local: str) -> Imap:
    return Imap(relay.dovecot.imaps_port).login(f"{local}@{DOMAIN}", PASSWORD)


def postconf(relay: LocalRelay, name: str) -> str:
    """The value the relay's real Postfix uses."""
    command = ["postconf", "-c", str(relay.postfix.dir), "-h", name]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


def tokens_of(imap: Imap) -> bytes | None:
    return imap.get("INBOX", "/private/devicetoken").get("/private/devicetoken")


def test_capabilities_mark_a_chatmail_relay_with_push(relay):
    imap = login(relay, "capable01")
    caps = imap.capabilities()
    imap.close()
    assert {"XCHATMAIL", "XDELTAPUSH", "METADATA", "IDLE"} <= caps


def test_device_tokens_as_delta_chat_sets_them(relay):
    imap = login(relay, "tokens001")
    assert tokens_of(imap) is None
    assert imap.set_token("1111").startswith(b"OK")
    assert tokens_of(imap) == b"1111"
    assert imap.set_token("2222").startswith(b"OK")
    assert tokens_of(imap) == b"1111 2222"
    # the same token again: stored once, now the newest
    assert imap.set_token("1111").startswith(b"OK")
    assert tokens_of(imap) == b"2222 1111"
    imap.close()
    home = Path(relay.config.chatmail.mailboxes_dir) / f"tokens001@{DOMAIN}"
    stored = layout.device_tokens_path(home).read_text().splitlines()
    assert [line.split("\t")[1] for line in stored] == ["2222", "1111"]
    # a second session (another device) sees the same tokens, on any mailbox of the account
    other = login(relay, "tokens001")
    assert tokens_of(other) == b"2222 1111"
    other.close()


def test_at_most_max_tokens_the_oldest_dropped(relay):
    imap = login(relay, "tokens002")
    for token in ("a1", "b2", "c3", "d4"):
        assert imap.set_token(token).startswith(b"OK")
    assert tokens_of(imap) == b"b2 c3 d4"  # max_tokens = 3
    imap.close()


@pytest.mark.parametrize(
    "bad",
    [
        "x" * 4097,
        b"abc\x01def",
        b"tab\there",
        b"bell\x07",
        b"del\x7f",
        b"two words",
        "caf\u00e9".encode(),
    ],
    ids=["4097-bytes", "ctrl-a", "tab", "bell", "del", "space", "non-ascii"],
)
def test_bad_tokens_are_refused_and_nothing_is_stored(relay, bad):
    imap = login(relay, "refused01")
    assert imap.set_token("keep9999").startswith(b"OK")
    refusals = relay.service_logs().count("device token refused")
    status = imap.set_token(bad)
    assert not status.startswith(b"OK"), status
    assert tokens_of(imap) == b"keep9999"
    imap.close()
    # chatmail-metadata refused it: Dovecot passed it on
    assert relay.service_logs().count("device token refused") == refusals + 1
    home = Path(relay.config.chatmail.mailboxes_dir) / f"refused01@{DOMAIN}"
    path = layout.device_tokens_path(home)
    text = path.read_text() if path.exists() else ""
    needle = bad if isinstance(bad, str) else bad.decode("latin-1")
    assert needle not in text


def test_largest_token_is_stored(relay):
    imap = login(relay, "bigtoken1")
    token = "openpgp:" + "A" * (4096 - 8)
    assert imap.set_token(token).startswith(b"OK")
    assert tokens_of(imap) == token.encode()
    imap.close()


def test_no_way_to_another_users_tokens(relay):
    owner = login(relay, "ownerofit")
    assert owner.set_token("1111").startswith(b"OK")
    owner.close()
    other = login(relay, "otheruser")
    assert tokens_of(other) is None
    # another user's mailbox cannot be named: no shared namespace, no "user/..." mailboxes
    for mailbox in (f"ownerofit@{DOMAIN}/INBOX", "~ownerofit/INBOX", "../ownerofit/INBOX"):
        status = other.set_token("3333", mailbox=mailbox)
        assert not status.startswith(b"OK"), (mailbox, status)
        status, _ = other.command(f'GETMETADATA "{mailbox}" (/private/devicetoken)')
        assert not status.startswith(b"OK"), (mailbox, status)
    assert other.set_token("3333").startswith(b"OK")  # lands in its own account only
    other.close()
    owner = login(relay, "ownerofit")
    assert tokens_of(owner) == b"1111"
    owner.close()


def test_server_keys_when_configured(relay):
    imap = login(relay, "keysuser1")
    before = int(time.time())
    values = imap.get("", CLIENT_GET)
    imap.close()
    prefix = "/shared/vendor/deltachat/"
    assert values[prefix + "maxsmtprecipients"] == b"77"
    assert values[prefix + "irohrelay"] == b"https://iroh.chat.localhost/"
    assert json.loads(values[prefix + "appversions"]) == APP_VERSIONS
    assert b"\n" not in values[prefix + "appversions"]
    host, port, expiry, password = values[prefix + "turn"].decode().split(":")
    assert (host, port) == ("turn.chat.localhost", "3478")
    assert before + 86400 <= int(expiry) <= int(time.time()) + 86400
    digest = hmac.new(TURN_SECRET.encode(), expiry.encode(), hashlib.sha1).digest()
    assert password == base64.b64encode(digest).decode()
    # what Postfix enforces is the number told to clients
    assert postconf(relay, "smtpd_recipient_limit") == "77"
    assert values["/shared/admin"] == f"mailto:ops@{DOMAIN}".encode()


def test_server_keys_absent_when_not_configured(bare_relay):
    imap = login(bare_relay, "keysuser2")
    values = imap.get("", CLIENT_GET)
    imap.close()
    prefix = "/shared/vendor/deltachat/"
    assert values.get(prefix + "maxsmtprecipients") == b"1000"
    for name in ("irohrelay", "turn"):
        assert values.get(prefix + name) is None, name
    shipped = json.loads(appversions.SHIPPED.read_bytes())
    assert json.loads(values[prefix + "appversions"]) == shipped
    assert postconf(bare_relay, "smtpd_recipient_limit") == "1000"
    assert values["/shared/admin"] == f"mailto:postmaster@{DOMAIN}".encode()  # the default


def test_server_keys_cannot_be_set_by_clients(relay):
    imap = login(relay, "keysuser3")
    status, _ = imap.command('SETMETADATA "" (/shared/vendor/deltachat/irohrelay "https://evil/")')
    assert not status.startswith(b"OK")
    assert imap.get("", "/shared/vendor/deltachat/irohrelay") == {
        "/shared/vendor/deltachat/irohrelay": b"https://iroh.chat.localhost/"
    }
    imap.close()
