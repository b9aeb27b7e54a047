"""The metadata dict session without a daemon: lookups, transactions, refusals, server keys."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest
from chatmail_services.metadata import appversions, serverkeys
from chatmail_services.metadata.session import Session, settings_from_config

from chatmail_services import layout
from chatmail_services.dictserver import Deferred

GUID = "0123456789abcdef0123456789abcdef"
USER = "someone01@chat.example"
TOKEN_KEY = f"priv/{GUID}/devicetoken"
SERVER = f"shared/{GUID}/vendor/vendor.dovecot/pvt/server/vendor/deltachat/"
HELLO = "H3\t2\t0\t\tmetadata"


def run(session: Session, line: str) -> str | None:
    reply = session.handle(line)
    if isinstance(reply, Deferred):
        return reply.finish(reply.work())
    return reply


def set_token(session: Session, value: str, tid: str = "1", user: str = USER) -> str | None:
    for line in (f"B{tid}\t{user}", f"S{tid}\t{TOKEN_KEY}\t{value}"):
        assert run(session, line) is None
    return run(session, f"C{tid}")


@pytest.fixture
def home(config) -> Path:
    path = layout.account_dir(config.chatmail.mailboxes_dir, USER)
    path.mkdir()
    return path


@pytest.fixture
def session(config, home) -> Session:
    s = Session(settings_from_config(config))
    assert run(s, HELLO) is None
    return s


def test_set_and_read_back(session, home):
    assert run(session, f"L{TOKEN_KEY}\t{USER}") == "N\n"
    assert set_token(session, "1111") == "O\n"
    assert set_token(session, "2222", tid="2") == "O\n"
    assert run(session, f"L{TOKEN_KEY}\t{USER}") == "O1111 2222\n"
    # any mailbox of the account, any case of the address Dovecot passes
    other = "f" * 32
    assert run(session, f"Lpriv/{other}/devicetoken\t{USER.upper()}") == "O1111 2222\n"
    lines = layout.device_tokens_path(home).read_text().splitlines()
    assert [line.split("\t")[1] for line in lines] == ["1111", "2222"]
    assert not list(home.glob(".*.tmp"))


def test_refused_tokens_store_nothing(session, home):
    assert set_token(session, "keep") == "O\n"
    before = layout.device_tokens_path(home).read_bytes()
    for tid, bad in enumerate(["x" * 4097, "a\x01t", "two words", "a\udcff", "\x01t"]):
        escaped = bad.replace("\x01", "\x011").replace("\t", "\x01t")
        reply = set_token(session, escaped, tid=f"b{tid}")
        assert reply is not None and reply.startswith(f"Fb{tid}\t"), reply
    assert layout.device_tokens_path(home).read_bytes() == before


def test_one_bad_token_in_a_transaction_stores_none(session, home):
    for line in (f"B7\t{USER}", f"S7\t{TOKEN_KEY}\tgood", f"S7\t{TOKEN_KEY}\tb ad"):
        run(session, line)
    assert run(session, "C7").startswith("F7\t")
    assert not layout.device_tokens_path(home).exists()


def test_unknown_or_invalid_accounts_get_nothing(session, config):
    for user in ("nobody001@chat.example", "../someone01@chat.example", "x@other.example", ""):
        assert set_token(session, "1111", user=user).startswith("F1\t"), user
        assert run(session, f"L{TOKEN_KEY}\t{user}") == "N\n"
    assert sorted(p.name for p in Path(config.chatmail.mailboxes_dir).iterdir()) == [USER]


def test_only_device_tokens_are_writable(session):
    for line in (f"B3\t{USER}", f"S3\t{SERVER}irohrelay\thttps://evil/"):
        run(session, line)
    assert run(session, "C3").startswith("F3\t")
    for line in (f"B4\t{USER}", f"A4\t{TOKEN_KEY}\t1"):
        run(session, line)
    assert run(session, "C4").startswith("F4\t")
    # unsetting a token is accepted and changes nothing
    assert set_token(session, "1111") == "O\n"
    for line in (f"B5\t{USER}", f"U5\t{TOKEN_KEY}"):
        run(session, line)
    assert run(session, "C5") == "O\n"
    assert run(session, f"L{TOKEN_KEY}\t{USER}") == "O1111\n"
    assert run(session, "C99") == "N\n"  # unknown transaction


def test_iteration_ends_at_once_and_unknown_keys_are_absent(session):
    assert run(session, f"I0\t0\tpriv/{GUID}/\t{USER}") == "\n"
    assert run(session, f"Lshared/{GUID}/comment\t{USER}") == "N\n"
    assert run(session, f"Lpriv/{GUID}/other\t{USER}") == "N\n"


def test_wrong_dict_name_fails(config, home):
    s = Session(settings_from_config(config))
    run(s, "H3\t2\t0\t\tauth")
    assert run(s, f"L{TOKEN_KEY}\t{USER}").startswith("F")


def test_server_keys_absent_by_default(make_config, tmp_path):
    config = make_config(metadata={"app_versions_file": ""})
    s = Session(settings_from_config(config))
    assert run(s, HELLO) is None
    assert run(s, f"L{SERVER}maxsmtprecipients\t{USER}") == "O1000\n"
    for name in ("irohrelay", "turn", "appversions"):
        assert run(s, f"L{SERVER}{name}\t{USER}") == "N\n", name


def test_server_keys_configured(make_config, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    versions = tmp_path / "versions.json"
    versions.write_text('{\n  "clients": [{"clientId": "x", "sources": []}]\n}\n')
    config = make_config(
        chatmail={"max_recipients": 50},
        metadata={
            "iroh_relay": "https://iroh.example/",
            "turn_host": "turn.example",
            "turn_port": 5349,
            "turn_secret_file": secret,
            "app_versions_file": versions,
        },
    )
    s = Session(settings_from_config(config))
    run(s, HELLO)
    assert run(s, f"L{SERVER}maxsmtprecipients\t") == "O50\n"
    assert run(s, f"L{SERVER}irohrelay\t") == "Ohttps://iroh.example/\n"
    assert run(s, f"L{SERVER}appversions\t") == 'O{"clients":[{"clientId":"x","sources":[]}]}\n'
    host, port, expiry, password = run(s, f"L{SERVER}turn\t")[1:-1].split(":")
    assert (host, port) == ("turn.example", "5349")
    # the password as OpenSSL computes it (an implementation of its own)
    hmac_sha1 = subprocess.run(
        ["openssl", "dgst", "-sha1", "-hmac", "s3cret", "-binary"],
        input=expiry.encode(),
        capture_output=True,
        check=True,
    ).stdout
    assert password == base64.b64encode(hmac_sha1).decode()
    versions.write_text("not json")
    assert run(s, f"L{SERVER}appversions\t") == "N\n"
    versions.unlink()  # while the file does not exist: the list shipped with the package
    shipped = json.loads(appversions.SHIPPED.read_bytes())
    assert json.loads(run(s, f"L{SERVER}appversions\t")[1:]) == shipped


def test_turn_credentials_expire_after_the_lifetime():
    turn = serverkeys.Turn("t.example", 3478, b"k", 86400)
    assert serverkeys.turn_credentials(turn, 1000.7).split(":")[2] == "87400"


def test_turn_secret_must_be_readable(make_config, tmp_path):
    config = make_config(metadata={"turn_host": "t.example", "turn_secret_file": tmp_path / "no"})
    with pytest.raises(serverkeys.SettingsError, match="turn_secret_file"):
        settings_from_config(config)
    (tmp_path / "no").write_text("\n")
    with pytest.raises(serverkeys.SettingsError, match="empty"):
        settings_from_config(config)


def _message_new(session: Session, tid: str, key: str = f"priv/{GUID}/messagenew") -> str | None:
    for line in (f"B{tid}\t{USER}", f"S{tid}\t{key}\t1"):
        assert run(session, line) is None
    return run(session, f"C{tid}")


def test_only_the_push_dict_notifies(config, home):
    """`/private/messagenew` notifies only on the LMTP hook's dict (`push`); on the IMAP
    clients' dict (`metadata`) it is refused like any read-only key."""
    calls: list[tuple[str, list[str]]] = []
    imap = Session(settings_from_config(config), lambda a, t: calls.append((a, t)))
    assert run(imap, HELLO) is None
    assert set_token(imap, "tok1") == "O\n"
    assert _message_new(imap, "2").startswith("F")
    assert calls == []
    hook = Session(settings_from_config(config), lambda a, t: calls.append((a, t)))
    assert run(hook, "H3\t2\t0\t\tpush") is None
    assert _message_new(hook, "3") == "O\n"
    assert calls == [(USER, ["tok1"])]
    # the hook's dict takes nothing else and reads nothing
    assert _message_new(hook, "4", TOKEN_KEY).startswith("F")
    assert run(hook, f"L{TOKEN_KEY}\t{USER}") == "N\n"
    assert calls == [(USER, ["tok1"])]
