"""Each rule of the reaper spec on a synthetic relay tree (library level, fixed clock)."""

from __future__ import annotations

import os

import pytest
from chatmail_services.expire.rules import Policy
from expire.relaytree import reap, snapshot

from chatmail_services.layout import DAY

HOUR = 3600
A = "alice0001@chat.example"
B = "bob000002@chat.example"


@pytest.fixture
def policy(make_config):
    return Policy.from_config(make_config())


def test_policy_from_config(make_config):
    config = make_config(
        chatmail={"max_mailbox_size": "1M"},
        expire={"delete_mails_after": 3, "quota_trim_min_age_hours": 2},
    )
    policy = Policy.from_config(config)
    assert policy.mails_after == 3 * DAY
    assert policy.large_after == 7 * DAY
    assert policy.large_size == 200_000
    assert policy.inactive_after == 90 * DAY
    assert policy.max_mailbox_size == 1024**2
    assert (policy.trim_start_percent, policy.trim_target_percent) == (75, 70)
    assert policy.trim_min_age == 2 * HOUR


def test_rule1_inactive_account_removed_whole(relay, policy):
    gone = relay.account(A, login_days_ago=91, folders=(".DeltaChat", ".Sent"))
    relay.message(A, age=HOUR)
    relay.message(A, age=HOUR, folder=".DeltaChat")
    relay.message(A, age=HOUR, folder=".Sent", box="new")
    relay.maildirsize(A)
    kept = relay.account(B, login_days_ago=89, folders=(".DeltaChat",))
    fresh = relay.message(B, age=HOUR, folder=".DeltaChat")
    out = reap(relay.root, policy, relay.now)
    assert not gone.exists()
    assert fresh.exists() and (kept / "password").exists()
    assert out.stats.accounts_removed == 1
    assert out.stats.messages_removed == 3
    assert out.stats.messages_by_rule["inactive"] == 3
    assert out.stats.accounts_scanned == 2
    assert out.errors == []


def test_rule1_last_login_is_day_granular(relay, policy):
    # the auth responder records logins at UTC midnight: 90 days + part of a day is inactive
    relay.account(A, login_days_ago=90)
    relay.now += 1  # any moment after midnight 90 days later
    password_mtime = (relay.root / A / "password").stat().st_mtime
    assert relay.now - password_mtime > 90 * DAY
    reap(relay.root, policy, relay.now)
    assert not (relay.root / A).exists()


def test_rule2_directory_without_password(relay, policy):
    empty_old = relay.root / "old-empty@chat.example"
    empty_old.mkdir()
    os.utime(empty_old, (relay.now - 2 * HOUR,) * 2)
    empty_new = relay.root / "being-created@chat.example"
    empty_new.mkdir()
    os.utime(empty_new, (relay.now - 60,) * 2)
    relay.account("foreign@chat.example", login_days_ago=None)
    old_mail = relay.message("foreign@chat.example", age=100 * DAY)
    out = reap(relay.root, policy, relay.now)
    assert not empty_old.exists()
    assert empty_new.exists()  # an account being created is not raced
    assert old_mail.exists()  # not ours: left alone, reported
    assert out.stats.empty_dirs_removed == 1
    assert out.stats.dirs_without_password == 1
    assert ("foreign@chat.example", "leave", "non-empty directory without password file") in (
        out.actions
    )


@pytest.mark.parametrize("folder", ["", ".DeltaChat", ".Sent", ".Archive.2025"])
@pytest.mark.parametrize("box", ["cur", "new", "tmp"])
def test_rule3_old_messages_deleted_everywhere(relay, policy, folder, box):
    relay.account(A, folders=(folder,) if folder else ())
    old = relay.message(A, age=20 * DAY + 1, folder=folder, box=box)
    young = relay.message(A, age=20 * DAY - 1, folder=folder, box=box)
    out = reap(relay.root, policy, relay.now)
    assert not old.exists()
    assert young.exists()
    assert out.stats.messages_by_rule["age"] == 1
    assert out.stats.bytes_removed == 100


def test_rule3_dovecot_files_never_deleted(relay, policy):
    home = relay.account(A, folders=(".DeltaChat",))
    relay.message(A, age=30 * DAY)
    # Dovecot's own files, ancient, even where messages live
    for where in (home, home / ".DeltaChat", home / "cur"):
        for name in ("dovecot.index", "dovecot.index.cache", "dovecot-uidlist", "subscriptions"):
            relay.file(where / name, b"x", age=1000 * DAY)
    before = {p for p in relay.made if "dovecot" in p.name or p.name == "subscriptions"}
    reap(relay.root, policy, relay.now)
    assert all(p.exists() for p in before)
    assert (home / "password").exists()


def test_rule4_large_seen_messages(relay, make_config):
    policy = Policy.from_config(make_config(expire={"large_message_size": 1000}))
    relay.account(A, folders=(".DeltaChat",))
    large_seen_old = relay.message(A, age=7 * DAY + 1, size=1001, folder=".DeltaChat")
    large_seen_young = relay.message(A, age=7 * DAY - 1, size=1001)
    large_unseen_old = relay.message(A, age=8 * DAY, size=5000, box="new")
    exactly_limit = relay.message(A, age=8 * DAY, size=1000)
    out = reap(relay.root, policy, relay.now)
    assert not large_seen_old.exists()
    assert large_seen_young.exists() and large_unseen_old.exists() and exactly_limit.exists()
    assert out.stats.messages_by_rule["large"] == 1


def test_rule4_default_limit_is_200_kb(relay, policy):
    relay.account(A)
    large = relay.message(A, age=8 * DAY, size=200_001)
    small = relay.message(A, age=8 * DAY, size=200_000)
    reap(relay.root, policy, relay.now)
    assert not large.exists() and small.exists()


def test_rule5_quota_trim_oldest_first_across_folders(relay, make_config):
    # 100 KiB quota: trim starts above 76800 bytes and goes down to at most 71680
    policy = Policy.from_config(make_config(chatmail={"max_mailbox_size": "100K"}))
    relay.account(A, folders=(".DeltaChat", ".Sent"))
    oldest = relay.message(A, age=5 * DAY, size=4000, folder=".Sent")
    second = relay.message(A, age=4 * DAY, size=4000, box="new")
    third = relay.message(A, age=3 * DAY, size=4000, folder=".DeltaChat")
    rest = [relay.message(A, age=2 * DAY, size=5000, folder=".DeltaChat") for _ in range(13)]
    # 12000 + 65000 = 77000 bytes > 76800: delete oldest until <= 71680
    out = reap(relay.root, policy, relay.now)
    assert not oldest.exists() and not second.exists()
    assert third.exists() and all(p.exists() for p in rest)
    assert out.stats.messages_by_rule["quota"] == 2


def test_rule5_below_start_nothing_trimmed(relay, make_config):
    policy = Policy.from_config(make_config(chatmail={"max_mailbox_size": "100K"}))
    relay.account(A)
    files = [relay.message(A, age=2 * DAY, size=7680) for _ in range(10)]  # exactly 75 %
    out = reap(relay.root, policy, relay.now)
    assert all(p.exists() for p in files)
    assert out.stats.messages_removed == 0


def test_rule5_never_younger_than_24_hours(relay, make_config):
    policy = Policy.from_config(make_config(chatmail={"max_mailbox_size": "100K"}))
    relay.account(A)
    old = relay.message(A, age=25 * HOUR, size=10000)
    young = [relay.message(A, age=23 * HOUR, size=10000) for _ in range(9)]
    reap(relay.root, policy, relay.now)
    assert not old.exists()
    assert all(p.exists() for p in young)  # still above 70 %, but too young


def test_rule5_tmp_not_counted_and_runs_after_rules_3_4(relay, make_config):
    policy = Policy.from_config(make_config(chatmail={"max_mailbox_size": "100K"}))
    relay.account(A)
    in_tmp = relay.message(A, age=2 * DAY, size=50000, box="tmp")
    expired = relay.message(A, age=21 * DAY, size=30000)
    kept = relay.message(A, age=2 * DAY, size=50000)
    out = reap(relay.root, policy, relay.now)
    assert not expired.exists()
    assert in_tmp.exists() and kept.exists()  # 50000 counted bytes: below 75 %
    assert out.stats.messages_by_rule == {"inactive": 0, "age": 1, "large": 0, "quota": 0}


def test_rule6_maildirsize_removed_only_when_something_deleted(relay, policy):
    relay.account(A)
    relay.maildirsize(A)
    relay.message(A, age=21 * DAY)
    relay.account(B)
    relay.maildirsize(B)
    relay.message(B, age=DAY)
    reap(relay.root, policy, relay.now)
    assert not (relay.root / A / "maildirsize").exists()
    assert (relay.root / B / "maildirsize").exists()


def test_names_without_time_or_size_fall_back_to_stat(relay, policy):
    relay.account(A)
    old = relay.message(A, age=21 * DAY, named=False)
    young = relay.message(A, age=19 * DAY, named=False)
    no_size = relay.file(relay.root / A / "cur" / f"{relay.now - 30 * DAY}.M1.host:2,S", b"abc")
    out = reap(relay.root, policy, relay.now)
    assert not old.exists() and young.exists() and not no_size.exists()
    assert out.stats.bytes_removed == 100 + 3


def test_dry_run_changes_nothing_and_counts_the_same(relay, make_config):
    policy = Policy.from_config(make_config(chatmail={"max_mailbox_size": "100K"}))
    relay.account(A, folders=(".DeltaChat",))
    relay.maildirsize(A)
    for age in range(0, 40 * DAY, DAY // 2):
        relay.message(A, age=age, size=3000, folder=".DeltaChat" if age % DAY else "")
    relay.account(B, login_days_ago=120)
    relay.message(B, age=DAY)
    empty = relay.root / "empty@chat.example"
    empty.mkdir()
    os.utime(empty, (relay.now - DAY,) * 2)
    before = snapshot(relay.root)
    dry = reap(relay.root, policy, relay.now, remove=False)
    assert snapshot(relay.root) == before
    real = reap(relay.root, policy, relay.now, remove=True)
    assert dry.stats == real.stats
    assert dry.actions == real.actions
    assert real.stats.messages_by_rule["quota"] > 0
    assert snapshot(relay.root) != before


def test_vanished_files_are_normal(relay, policy, monkeypatch):
    relay.account(A)
    victims = [relay.message(A, age=21 * DAY) for _ in range(3)]
    real_unlink = os.unlink

    def racing_unlink(path, *args, **kwargs):
        # Dovecot expunges each file just before the reaper gets to it
        if isinstance(path, str) and path.endswith(":2,S"):
            real_unlink(path, *args, **kwargs)
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", racing_unlink)
    out = reap(relay.root, policy, relay.now)
    assert out.errors == []
    assert not any(p.exists() for p in victims)
    assert out.stats.messages_removed == 0  # someone else removed them


def test_failures_are_reported_and_the_rest_processed(relay, policy, monkeypatch):
    relay.account(A)
    stuck = relay.message(A, age=21 * DAY)
    other = relay.message(A, age=22 * DAY)
    relay.account(B, login_days_ago=100)
    relay.message(B, age=DAY)
    real_unlink = os.unlink

    def failing_unlink(path, *args, **kwargs):
        if path in (stuck.name, "password"):
            raise PermissionError(13, "Permission denied")
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", failing_unlink)
    out = reap(relay.root, policy, relay.now)
    assert stuck.exists() and not other.exists()
    assert sorted((a, p) for a, p, _ in out.errors) == [(A, f"cur/{stuck.name}"), (B, "password")]
    assert out.stats.errors == 2
    # the address is free at once; what could not be deleted waits in a tombstone
    assert not (relay.root / B).exists()
    assert os.listdir(relay.root / f".expired.{B}") == ["password"]
    monkeypatch.undo()
    again = reap(relay.root, policy, relay.now)
    assert again.errors == []
    assert sorted(os.listdir(relay.root)) == [A]
    assert again.stats.accounts_scanned == 1  # a tombstone is no account


def test_missing_root_is_an_error(tmp_path, policy):
    out = reap(tmp_path / "nowhere", policy, 0)
    assert len(out.errors) == 1 and out.stats.errors == 1
