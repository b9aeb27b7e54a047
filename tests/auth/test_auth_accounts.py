"""The protocol-neutral account core: names, passwords, creation, refusals, last login."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from chatmail_services.authsocket import accounts
from chatmail_services.authsocket.accounts import Status, settings_from_config
from chatmail_services.authsocket.hashing import verify_password
from chatmail_services.milter.accounts import enforcement_lookup
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from chatmail_services import layout

GOOD = "abcdefghi@chat.example"
PASSWORD = "s3cret-passw0rd"


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_first_login_creates_the_account(settings):
    result = accounts.lookup_passdb(settings, GOOD, PASSWORD)
    assert result.status is Status.FOUND and result.created
    home = Path(settings.chatmail.mailboxes_dir) / GOOD
    stored = (home / "password").read_text().strip()
    assert result.fields["password"] == stored
    assert verify_password(PASSWORD.encode(), stored)
    assert (home / "enforceE2EEincoming").exists()
    # ...and the milter, reading the same layout, treats the new account as enforcing.
    assert enforcement_lookup(str(settings.chatmail.mailboxes_dir), "chat.example")(GOOD)
    assert result.fields["home"] == str(home)
    assert result.fields["uid"] == os.getuid() and result.fields["gid"] == os.getgid()
    assert result.fields["quota_rule"] == "*:storage=512000"  # 500M in KiB
    assert result.fields["quota_storage_size"] == 500 * 1024 * 1024
    assert sorted(os.listdir(home)) == ["enforceE2EEincoming", "password"]  # no temp files left
    assert (home.stat().st_mode & 0o777) == 0o700
    assert ((home / "password").stat().st_mode & 0o777) == 0o600
    # last login recorded at creation, at day granularity
    assert layout.read_last_login(home) == layout.day_start(time.time())


def test_second_login_returns_the_stored_hash(settings):
    first = accounts.lookup_passdb(settings, GOOD, PASSWORD)
    again = accounts.lookup_passdb(settings, GOOD, PASSWORD)
    assert again.status is Status.FOUND and not again.created
    assert again.fields == first.fields


def test_wrong_password_changes_nothing(settings):
    accounts.lookup_passdb(settings, GOOD, PASSWORD)
    home = Path(settings.chatmail.mailboxes_dir) / GOOD
    os.utime(home / "password", (86400, 86400))
    before = {p: (p.read_bytes(), p.stat().st_mtime) for p in home.iterdir()}
    result = accounts.lookup_passdb(settings, GOOD, "another-password")
    assert result.status is Status.FOUND  # Dovecot compares and refuses
    assert not verify_password(b"another-password", str(result.fields["password"]))
    assert {p: (p.read_bytes(), p.stat().st_mtime) for p in home.iterdir()} == before


def test_userdb_lookup(settings):
    assert accounts.lookup_userdb(settings, GOOD).status is Status.NOT_FOUND
    accounts.lookup_passdb(settings, GOOD, PASSWORD)
    result = accounts.lookup_userdb(settings, GOOD.upper())
    assert result.status is Status.FOUND
    assert "password" not in result.fields
    assert result.fields["home"] == str(Path(settings.chatmail.mailboxes_dir) / GOOD)


BAD_NAMES = [
    "../x@chat.example", "a/b@chat.example", "abc\0defgh@chat.example", ".hiddenxx@chat.example",
    "abcdefghi@other.example", "abcdefghi", "@chat.example", "abcdéfghi@chat.example",
    "abcdefghi@chat.example/..", "abc defgh@chat.example", "abc\ndefg@chat.example",
    "abcdefghi@chat.example\0", "ab\tcdefgh@chat.example", "..@chat.example", ".@chat.example",
    "\u212aabcdefgh@chat.example",  # KELVIN SIGN lower-cases to ASCII "k"
    "a" * 65 + "@chat.example",
]  # fmt: skip


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_are_refused_and_create_nothing(settings, tmp_path, name):
    before = files_under(tmp_path)
    assert accounts.lookup_passdb(settings, name, PASSWORD).status is Status.NOT_FOUND
    assert accounts.lookup_userdb(settings, name).status is Status.NOT_FOUND
    assert not accounts.record_last_login(settings, name)
    assert files_under(tmp_path) == before


@given(st.text(max_size=30), st.sampled_from(["", "@chat.example"]))
@hsettings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_no_name_ever_leaves_the_mailbox_root(settings, local, suffix):
    address = accounts.normalize_address(settings, local + suffix)
    if address is not None:
        path = (Path(settings.chatmail.mailboxes_dir) / address).resolve()
        assert path.parent == Path(settings.chatmail.mailboxes_dir).resolve()
        assert not address.startswith(".") and "/" not in address and "\0" not in address


@pytest.mark.parametrize(
    ("name", "password", "reason"),
    [
        ("abcdefgh@chat.example", PASSWORD, "local part length"),  # 8 < 9
        ("abcdefghij@chat.example", PASSWORD, "local part length"),  # 10 > 9
        (GOOD, "12345678", "password too short"),
        (GOOD, "x" * 257, "password too long"),
        (GOOD, "é" * 129, "password too long"),  # 258 bytes
    ],
)
def test_creation_rules(settings, name, password, reason):
    result = accounts.lookup_passdb(settings, name, password)
    assert result.status is Status.NOT_FOUND
    assert reason in result.reason
    assert not any(Path(settings.chatmail.mailboxes_dir).iterdir())


def test_upper_case_is_folded(settings):
    result = accounts.lookup_passdb(settings, "ABCdefGHI@Chat.Example", PASSWORD)
    assert result.status is Status.FOUND
    assert os.listdir(settings.chatmail.mailboxes_dir) == [GOOD]


def test_nocreate_is_a_temporary_failure_and_existing_accounts_work(settings):
    accounts.lookup_passdb(settings, GOOD, PASSWORD)
    Path(settings.auth.nocreate_file).touch()
    refused = accounts.lookup_passdb(settings, "newaccoun@chat.example", PASSWORD)
    assert refused.status is Status.TEMPFAIL and "nocreate" in refused.reason
    assert accounts.lookup_passdb(settings, GOOD, PASSWORD).status is Status.FOUND
    assert os.listdir(settings.chatmail.mailboxes_dir) == [GOOD]


@pytest.mark.parametrize(
    ("option", "value", "reason"),
    [
        ("min_free_disk", "1000000T", "free disk"),
        ("min_available_memory", "1000000T", "available memory"),
        ("max_load_1m", "0.000001", "load"),
    ],
)
def test_headroom_refusals(make_config, option, value, reason, monkeypatch):
    if option == "max_load_1m":  # an idle machine may really have load 0.00
        monkeypatch.setattr(os, "getloadavg", lambda: (3.0, 1.0, 1.0))
    settings = settings_from_config(make_config(auth={option: value}))
    result = accounts.lookup_passdb(settings, GOOD, PASSWORD)
    assert result.status is Status.TEMPFAIL
    assert reason in result.reason
    assert not any(Path(settings.chatmail.mailboxes_dir).iterdir())


def test_concurrent_creation_in_threads_gives_one_hash(settings):
    barrier = threading.Barrier(20)
    results = []

    def login():
        barrier.wait()
        results.append(accounts.lookup_passdb(settings, GOOD, PASSWORD))

    threads = [threading.Thread(target=login) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    hashes = {r.fields["password"] for r in results}
    assert len(hashes) == 1
    assert sum(r.created for r in results) == 1
    home = Path(settings.chatmail.mailboxes_dir) / GOOD
    assert hashes == {(home / "password").read_text().strip()}
    assert sorted(os.listdir(home)) == ["enforceE2EEincoming", "password"]


def test_last_login_day_granularity_and_only_forward(settings):
    accounts.lookup_passdb(settings, GOOD, PASSWORD)
    path = Path(settings.chatmail.mailboxes_dir) / GOOD / "password"
    os.utime(path, (86400 * 10, 86400 * 10))
    assert accounts.record_last_login(settings, GOOD, now=86400 * 20 + 5000)
    assert path.stat().st_mtime == 86400 * 20
    assert accounts.record_last_login(settings, GOOD, now=86400 * 15)
    assert path.stat().st_mtime == 86400 * 20
    assert accounts.last_login(settings, GOOD) == 86400 * 20


def test_lookups_never_bump_last_login(settings):
    accounts.lookup_passdb(settings, GOOD, PASSWORD)
    path = Path(settings.chatmail.mailboxes_dir) / GOOD / "password"
    os.utime(path, (86400, 86400))
    accounts.lookup_passdb(settings, GOOD, PASSWORD)
    accounts.lookup_passdb(settings, GOOD, "wrong-password")
    accounts.lookup_userdb(settings, GOOD)
    assert path.stat().st_mtime == 86400


def test_last_login_of_unknown_account_creates_nothing(settings, tmp_path):
    before = files_under(tmp_path)
    assert not accounts.record_last_login(settings, "nobodyhere@chat.example")
    assert files_under(tmp_path) == before


def test_iteration_lists_complete_accounts_only(settings):
    names = [f"user{i:05d}@chat.example" for i in range(5)]
    for name in names:
        accounts.lookup_passdb(settings, name, PASSWORD)
    root = Path(settings.chatmail.mailboxes_dir)
    (root / "halfmade9@chat.example").mkdir()  # no password file: not an account
    (root / "strangerx@other.example").mkdir()
    (root / "strangerx@other.example" / "password").write_text("x")
    assert sorted(accounts.iter_users(settings)) == names


def test_mail_user_resolves_to_numbers(make_config):
    settings = settings_from_config(make_config(auth={"mail_user": "nobody"}))
    import pwd

    entry = pwd.getpwnam("nobody")
    assert (settings.uid, settings.gid) == (entry.pw_uid, entry.pw_gid)
    with pytest.raises(accounts.SettingsError, match="mail_user"):
        settings_from_config(make_config(auth={"mail_user": "no-such-user-here"}))


def test_run_as_root_hands_new_accounts_to_the_mail_user(make_config):
    if os.geteuid() != 0:
        pytest.skip("the hand-over only happens when the responder runs as root")
    import pwd

    entry = pwd.getpwnam("nobody")
    settings = settings_from_config(make_config(auth={"mail_user": "nobody"}))
    accounts.lookup_passdb(settings, GOOD, PASSWORD)
    home = Path(settings.chatmail.mailboxes_dir) / GOOD
    for path in (home, home / "password", home / "enforceE2EEincoming"):
        assert (path.stat().st_uid, path.stat().st_gid) == (entry.pw_uid, entry.pw_gid), path


def test_creation_failure_is_temporary_and_does_not_name_the_address(settings):
    (Path(settings.chatmail.mailboxes_dir) / GOOD).write_text("not a directory")
    result = accounts.lookup_passdb(settings, GOOD, PASSWORD)
    assert result.status is Status.TEMPFAIL
    assert "cannot create account" in result.reason
    assert "abcdefghi" not in result.reason


@pytest.mark.parametrize("local", ["qadot002.", "qa..dot03", "-abcdefgh"])
def test_names_that_are_no_dot_atom_or_look_like_options_create_nothing(settings, local):
    name = f"{local}@chat.example"
    assert accounts.lookup_passdb(settings, name, PASSWORD).status is Status.NOT_FOUND
    assert not any(Path(settings.chatmail.mailboxes_dir).iterdir())


def test_a_relay_without_a_domain_name_has_address_literal_accounts(make_config):
    settings = settings_from_config(make_config(chatmail={"mail_domain": "192.0.2.1"}))
    created = accounts.lookup_passdb(settings, "ABCdefghi@[192.0.2.1]", PASSWORD)
    assert created.status is Status.FOUND and created.created
    assert os.listdir(settings.chatmail.mailboxes_dir) == ["abcdefghi@[192.0.2.1]"]
    assert list(accounts.iter_users(settings)) == ["abcdefghi@[192.0.2.1]"]
    assert accounts.lookup_userdb(settings, "abcdefghi@[192.0.2.1]").status is Status.FOUND
    for other in ("abcdefghi@192.0.2.1", "abcdefghi@[192.0.2.2]", "abcdefghi@chat.example"):
        assert accounts.lookup_userdb(settings, other).status is Status.NOT_FOUND
    lookup = enforcement_lookup(settings.chatmail.mailboxes_dir, "192.0.2.1")
    assert lookup("abcdefghi@[192.0.2.1]")
    assert not lookup("abcdefghi@192.0.2.1")  # not ours: Postfix's business
