"""End to end: real Delta Chat accounts on a whole local relay (Postfix, Dovecot, our services).

The tests of this module share one relay and run in order: accounts are made first, the
log check runs last.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import imaplib
import os
import re
import smtplib
import ssl
import threading
import time
from email.message import EmailMessage
from pathlib import Path

import pytest
from harness.coturn import Coturn
from harness.maillog import message_id_of, milter_signature
from harness.messages import dkim_verifies, maildir_files, signature_domains, wait_until
from harness.turnclient import allocate

pytestmark = pytest.mark.e2e

TLS = ssl._create_unverified_context()
IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
IPV6 = re.compile(r"(?<![\w:])(?:[0-9a-fA-F]{1,4}:){2,7}[0-9a-fA-F]{0,4}(?![\w:])|::1\b")


def age_message(path: Path, delivered: int) -> Path:
    """Make a message look delivered at `delivered`: Dovecot's name starts with that time,
    and its mtime is that time (the reaper trusts the name; see docs/expire.md)."""
    _, rest = path.name.split(".", 1)
    aged = path.with_name(f"{delivered}.{rest}")
    path.rename(aged)
    os.utime(aged, (delivered, delivered))
    return aged


def imap_login(relay, addr: str, password: str) -> imaplib.IMAP4_SSL:
    imap = imaplib.IMAP4_SSL("127.0.0.1", relay.dovecot.imaps_port, ssl_context=TLS)
    imap.login(addr, password)
    return imap


def submit(relay, addr: str, password: str, message: bytes, rcpts: list[str], sender=None):
    """Send over SMTPS with the account's login; return (code, text) of the final reply."""
    with smtplib.SMTP_SSL("127.0.0.1", relay.postfix.smtps_port, context=TLS, timeout=60) as smtp:
        try:
            smtp.login(addr, password)  # with the milter away, Postfix tempfails already here
            smtp.sendmail(sender or addr, rcpts, message)
        except smtplib.SMTPResponseException as exc:
            return exc.smtp_code, exc.smtp_error.decode(errors="replace")
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            return code, text.decode(errors="replace")
    return 250, "ok"


def cleartext(sender: str, rcpt: str, subject: str = "hi") -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = rcpt
    message["Subject"] = subject
    message.set_content("no encryption here")
    return message.as_bytes().replace(b"\n", b"\r\n")


@pytest.fixture(scope="module")
def observer(relay, observer_address):
    """The account every message is copied to (always_bcc); no client reads it."""
    credentials = relay.new_credentials()
    addr = observer_address
    imap_login(relay, addr, credentials["password"]).logout()  # first login creates it
    return Path(relay.config.chatmail.mailboxes_dir) / addr


@pytest.fixture(scope="module")
def pair(relay, deltachat, observer):
    """Two Delta Chat accounts configured with fresh credentials (their first logins)."""
    accounts = []
    for _ in range(2):
        credentials = relay.new_credentials()
        account = deltachat.add_account()
        account.add_or_update_transport(
            relay.deltachat_transport(credentials["email"], credentials["password"])
        )
        account.bring_online()
        accounts.append((account, credentials))
    return accounts


def test_first_login_creates_the_accounts(relay, pair):
    mailboxes = Path(relay.config.chatmail.mailboxes_dir)
    for _account, credentials in pair:
        home = mailboxes / credentials["email"]
        assert (home / "password").read_text().startswith("{SHA512-CRYPT}$6$")
        assert (home / "enforceE2EEincoming").exists()


def test_delta_chat_gets_the_relays_turn_server(relay, pair):
    """The real client reads the TURN metadata key (GETMETADATA after login) and offers the
    relay's TURN server for calls, with REST credentials over the configured secret, which
    coturn, configured by the same templates, accepts for an allocation."""
    from e2e.conftest import TURN_HOST, TURN_SECRET

    servers = wait_until(lambda: pair[0][0].ice_servers())
    assert servers, pair[0][0].ice_servers()
    (server,) = servers
    assert any(f"turn:{TURN_HOST}:3478" in url for url in server["urls"]), server
    username, credential = server["username"], server["credential"]
    assert int(username) > time.time() + 86400
    digest = hmac.new(TURN_SECRET.encode(), username.encode(), hashlib.sha1).digest()
    assert credential == base64.b64encode(digest).decode()
    port = relay.config.metadata.turn_port
    with Coturn(relay.root, relay.config, port=port, address=TURN_HOST):
        assert allocate(TURN_HOST, port, username, credential) == 0
        assert allocate(TURN_HOST, port, username, credential[:-2] + "x=") == 401  # the control


def test_printed_login_qr_configures_delta_chat(relay, deltachat):
    """The dclogin: QR that scripts/relay.sh prints is accepted by the real client."""
    credentials = relay.new_credentials()
    account = deltachat.add_account()
    account.add_transport_from_qr(relay.dclogin_uri(credentials["email"], credentials["password"]))
    assert account.is_configured()
    home = Path(relay.config.chatmail.mailboxes_dir) / credentials["email"]
    assert (home / "password").exists()
    account.remove()


def test_secure_join_and_encrypted_chat_both_ways(relay, pair, observer):
    (alice, alice_cred), (bob, bob_cred) = pair
    # A QR code without "v=3" makes the joiner send the cleartext vc-request first.
    qr = alice.get_qr_code()
    legacy_qr = re.sub(r"&v=3\b", "", qr)
    assert legacy_qr != qr or "v=3" not in qr
    bob.secure_join(legacy_qr)
    alice.wait_for_securejoin_inviter_success()
    bob.wait_for_securejoin_joiner_success()

    bob_chat = bob.create_chat(alice)
    bob_chat.send_text("hello alice")
    assert alice.wait_for_incoming_msg().get_snapshot().text == "hello alice"
    alice_chat = alice.create_chat(bob)
    alice_chat.send_text("hello bob")
    assert bob.wait_for_incoming_msg().get_snapshot().text == "hello bob"

    def copies_from(addr: str) -> list[bytes]:
        return [
            p.read_bytes()
            for p in maildir_files(observer)
            if f"From: <{addr}>".encode() in p.read_bytes()
        ]

    assert wait_until(lambda: len(copies_from(alice_cred["email"])) >= 2)
    assert wait_until(lambda: len(copies_from(bob_cred["email"])) >= 2)
    seen_vc_request = False
    key = dict([relay.dkim_record()])
    for data in copies_from(alice_cred["email"]) + copies_from(bob_cred["email"]):
        headers = data.split(b"\n\n", 1)[0]
        # Everything a user submits leaves signed by the relay (here it stays local, and is
        # stored without the signature: the one the milter logged holds on top of the file).
        assert signature_domains(data) == [], headers
        field = milter_signature(relay, message_id_of(data))
        assert field is not None, headers
        assert signature_domains(field + data) == [relay.domain], headers
        assert dkim_verifies(field + data, key), headers
        if b"Secure-Join: vc-request" in headers:
            seen_vc_request = True
            continue
        assert b"Content-Type: multipart/encrypted" in headers, headers
        assert b"-----BEGIN PGP MESSAGE-----" in data
        assert b"hello alice" not in data and b"hello bob" not in data
    assert seen_vc_request, "the legacy join sent no cleartext vc-request"


def test_cleartext_with_own_login_gets_523(relay, pair):
    (_, alice), (_, bob) = pair
    code, text = submit(
        relay,
        alice["email"],
        alice["password"],
        cleartext(alice["email"], bob["email"]),
        [bob["email"]],
    )
    assert code == 523, text
    assert "Encryption Needed" in text


def port_25_data_error(relay, sender: str, rcpt: str) -> smtplib.SMTPDataError:
    """Send unsigned cleartext from sender to rcpt on port 25; the refusal at DATA."""
    with (
        smtplib.SMTP("127.0.0.1", relay.postfix.smtp_port, timeout=60) as smtp,
        pytest.raises(smtplib.SMTPDataError) as info,
    ):
        smtp.sendmail(sender, [rcpt], cleartext(sender, rcpt))
    return info.value


def test_unsigned_cleartext_from_outside_on_port_25_gets_554_no_dkim_signature(relay, pair):
    """Incoming mail needs a DKIM signature of its From domain before anything else: unsigned
    mail is refused with 554 before the encryption check could answer 523. (Validly signed
    cleartext gets the 523: tests/federation/test_outside_server.py.)"""
    (_, alice), _ = pair
    error = port_25_data_error(relay, "someone@elsewhere.example", alice["email"])
    assert (error.smtp_code, error.smtp_error) == (554, b"5.7.1 No DKIM signature found")


def test_cleartext_from_an_address_literal_on_port_25_gets_523(relay, pair):
    """A From address literal (a server without a domain) needs no DKIM signature when it is
    the sending server's own address (the test connects from 127.0.0.1), so the encryption
    policy still refuses its cleartext with 523; any other literal is refused first."""
    (_, alice), _ = pair
    error = port_25_data_error(relay, "someone@[127.0.0.1]", alice["email"])
    assert error.smtp_code == 523, error
    assert b"Encryption Needed" in error.smtp_error
    forged = port_25_data_error(relay, "someone@[192.0.2.1]", alice["email"])
    assert (forged.smtp_code, forged.smtp_error) == (
        554,
        b"5.7.1 From address literal is not the sending server's address",
    )


def test_from_header_not_matching_login_is_refused(relay, pair):
    (_, alice), (_, bob) = pair
    forged = cleartext(bob["email"], alice["email"])
    code, text = submit(relay, alice["email"], alice["password"], forged, [alice["email"]])
    assert code == 550, text
    assert "From header" in text


def test_sending_past_the_rate_limit_gets_450(relay):
    """The limit applies at MAIL FROM: a burst of transactions, then 450 from the milter."""
    credentials = relay.new_credentials()
    addr, password = credentials["email"], credentials["password"]
    imap_login(relay, addr, password).logout()
    burst = relay.config.milter.max_user_send_burst_size
    codes = []
    with smtplib.SMTP_SSL("127.0.0.1", relay.postfix.smtps_port, context=TLS, timeout=60) as smtp:
        smtp.login(addr, password)
        for _ in range(burst + 5):
            code, text = smtp.mail(addr)
            codes.append(code)
            smtp.rset()
    assert codes[:burst] == [250] * burst, codes
    assert 450 in codes[burst:], codes
    assert b"Too much mail from" in text


def test_message_sent_while_milter_is_down_arrives_after_it_is_back(relay, pair, observer):
    (alice, alice_cred), (bob, bob_cred) = pair
    relay.stop_milter()
    try:
        # A plain SMTP client sees the temporary failure Postfix gives while the milter is away.
        code, text = submit(
            relay,
            alice_cred["email"],
            alice_cred["password"],
            cleartext(alice_cred["email"], bob_cred["email"]),
            [bob_cred["email"]],
        )
        assert 400 <= code < 500, (code, text)
        # Delta Chat sends meanwhile; it retries after the temporary failure.
        alice.create_chat(bob).send_text("sent while the milter was down")
        time.sleep(3)
    finally:
        relay.start_milter()
    message = bob.wait_for_incoming_msg().get_snapshot()
    assert message.text == "sent while the milter was down"


def test_auth_restart_while_logins_continue_loses_no_login(relay, pair):
    (_, alice), _ = pair
    failures: list[str] = []
    logins = 0
    stop = threading.Event()

    def keep_logging_in() -> None:
        nonlocal logins
        while not stop.is_set():
            try:
                imap_login(relay, alice["email"], alice["password"]).logout()
                logins += 1
            except Exception as exc:  # any failure is a lost login
                failures.append(repr(exc))

    workers = [threading.Thread(target=keep_logging_in) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        for _ in range(3):
            time.sleep(1)
            relay.auth.restart()
        time.sleep(1)
    finally:
        stop.set()
        for worker in workers:
            worker.join(60)
    assert logins > 20
    assert failures == []


def test_mail_older_than_20_days_disappears_after_a_reaper_run(relay, observer):
    files = maildir_files(observer)
    assert len(files) >= 4
    old = int(time.time() - 21 * 86400)
    aged = [age_message(path, old) for path in files[: len(files) // 2]]
    result = relay.expire("--verbose")
    assert result.returncode == 0, result.stderr
    remaining = maildir_files(observer)
    assert not any(path.exists() for path in aged)
    assert len(remaining) == len(files) - len(aged)

    addr = observer.name
    password_less = relay.dovecot.doveadm(
        "-f", "flow", "mailbox", "status", "-u", addr, "messages", "INBOX"
    )
    assert f"messages={len(remaining)}" in password_less.stdout, password_less.stdout
    relay.dovecot.doveadm("quota", "recalc", "-u", addr)
    quota = relay.dovecot.doveadm("-f", "flow", "quota", "get", "-u", addr).stdout
    storage = re.search(r"Type=STORAGE Value=(\d+)", quota)
    assert storage, quota
    expected_kib = sum(path.stat().st_size for path in remaining) // 1024
    assert abs(int(storage.group(1)) - expected_kib) <= len(remaining), quota


def test_no_service_log_line_contains_an_ip_address(relay):
    logs = relay.service_logs()
    assert logs.strip(), "the services logged nothing at debug level"
    offending = [line for line in logs.splitlines() if IPV4.search(line) or IPV6.search(line)]
    assert offending == []
