"""hypothesis: random relay trees and clocks against an independent, simple model of the rules.

Every example builds a real tree on disk (plus a directory outside `mailboxes_dir` that
symlinks inside point to), runs a dry run (nothing may change) and then a real pass, and
compares the set of removed paths with what the model says.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from chatmail_services.expire.rules import Policy
from expire.relaytree import Relay, reap, snapshot
from hypothesis import given
from hypothesis import strategies as st

from chatmail_services.layout import DAY, day_start

HOUR = 3600
FOLDERS = ["", ".DeltaChat", ".Sent"]


@dataclass(frozen=True)
class Msg:
    folder: str
    box: str
    age: int
    size: int
    named: bool


@dataclass(frozen=True)
class Account:
    login_days_ago: int | None  # None: no password file
    bare: bool  # password-less: a bare directory (empty unless planted into)
    dir_age: int
    messages: tuple[Msg, ...]
    maildirsize: bool


# ages cluster around every threshold so strict/non-strict comparisons are exercised
ages = st.one_of(
    st.integers(0, 45 * DAY),
    st.sampled_from([20 * DAY, 7 * DAY, 24 * HOUR]).flatmap(lambda t: st.integers(t - 2, t + 2)),
)
messages = st.builds(
    Msg,
    folder=st.sampled_from(FOLDERS),
    box=st.sampled_from(["cur", "new", "tmp"]),
    age=ages,
    size=st.one_of(st.integers(0, 40000), st.sampled_from([1000, 1001])),
    named=st.booleans(),
)
accounts = st.builds(
    Account,
    login_days_ago=st.one_of(st.none(), st.integers(0, 200), st.sampled_from([89, 90, 91])),
    bare=st.booleans(),
    dir_age=st.integers(0, 3 * HOUR),
    messages=st.lists(messages, max_size=12).map(tuple),
    maildirsize=st.booleans(),
)
policies = st.builds(
    Policy,
    mails_after=st.sampled_from([20 * DAY, 3 * DAY]),
    large_after=st.just(7 * DAY),
    large_size=st.sampled_from([1000, 200_000]),
    inactive_after=st.just(90 * DAY),
    max_mailbox_size=st.sampled_from([50_000, 100_000, 500 * 1024**2]),
    trim_start_percent=st.sampled_from([75, 50]),
    trim_target_percent=st.sampled_from([70, 10]),
    trim_min_age=st.sampled_from([24 * HOUR, 0]),
)


def model(
    accts: list[tuple[str, Account, list[tuple[Msg, str, int]]]],
    before: dict[str, tuple],
    now: int,
    p: Policy,
) -> set[str]:
    """The paths (relative to the tmp root) the rules remove, computed the simple way."""
    gone: set[str] = set()
    for address, acct, files in accts:
        home = f"mailboxes/{address}"
        below = {k for k in before if k.startswith(home + "/")}
        if acct.login_days_ago is None:
            if not below and now - (now - acct.dir_age) > HOUR:
                gone.add(home)
            continue
        last_login = day_start(now - acct.login_days_ago * DAY)
        if now - last_login > p.inactive_after:
            gone |= below | {home}
            continue
        doomed = set()
        for msg, rel, when in files:
            too_old = now - when > p.mails_after
            large = msg.box == "cur" and msg.size > p.large_size and now - when > p.large_after
            if too_old or large:
                doomed.add(rel)
        counted = [(when, rel, msg.size) for msg, rel, when in files if msg.box != "tmp"]
        counted = [c for c in counted if c[1] not in doomed]
        used = sum(size for _, _, size in counted)
        if used * 100 > p.trim_start_percent * p.max_mailbox_size:
            for when, rel, size in sorted(counted):
                if used * 100 <= p.trim_target_percent * p.max_mailbox_size:
                    break
                if now - when >= p.trim_min_age:
                    doomed.add(rel)
                    used -= size
        gone |= {f"{home}/{rel}" for rel in doomed}
        if doomed and acct.maildirsize:
            gone.add(f"{home}/maildirsize")
    return gone


def build(top: Path, now: int, accts: list[Account]):
    relay = Relay(top / "mailboxes", now)
    relay.root.mkdir()
    outside = top / "outside"
    (outside / "maildir" / "cur").mkdir(parents=True)
    old_name = f"{now - 100 * DAY}.M1P1.evil,S=5,W=5:2,S"
    relay.file(outside / "old-file", b"keep!", age=100 * DAY)
    relay.file(outside / "maildir" / "cur" / old_name, b"keep!", age=100 * DAY)
    os.symlink(outside / "maildir", relay.root / "link@chat.example")
    built = []
    for i, acct in enumerate(accts):
        address = f"user{i:04d}@chat.example"
        home = relay.root / address
        if acct.login_days_ago is None and acct.bare:
            home.mkdir()
        else:
            relay.account(address, acct.login_days_ago, folders=(".DeltaChat", ".Sent"))
        files = []
        if not (acct.login_days_ago is None and acct.bare):
            for msg in acct.messages:
                path = relay.message(address, msg.age, msg.size, msg.folder, msg.box, msg.named)
                files.append((msg, str(path.relative_to(home)), now - msg.age))
            if acct.maildirsize:
                relay.maildirsize(address)
        if i == 0:  # plant symlinks pointing outside into the first account
            os.symlink(outside / "maildir", home / ".Evil")
            (home / "cur").mkdir(exist_ok=True)
            os.symlink(outside / "old-file", home / "cur" / old_name)
        os.utime(home, (now - acct.dir_age,) * 2)
        built.append((address, acct, files))
    return relay, built


@given(
    accts=st.lists(accounts, min_size=1, max_size=5),
    now=st.integers(1_600_000_000, 2_000_000_000),
    policy=policies.filter(lambda p: p.trim_target_percent <= p.trim_start_percent),
)
def test_removed_set_equals_model(accts, now, policy):
    with tempfile.TemporaryDirectory() as tmp:
        top = Path(tmp)
        relay, built = build(top, now, accts)
        before = snapshot(top)
        outside_before = {k: v for k, v in before.items() if k.startswith("outside")}

        dry = reap(relay.root, policy, now, remove=False)
        assert snapshot(top) == before, "a dry run changed the tree"

        real = reap(relay.root, policy, now, remove=True)
        after = snapshot(top)
        assert set(after) <= set(before), "the reaper created something"
        removed = set(before) - set(after)
        expected = model(built, before, now, policy)
        assert removed == expected
        # what is left is untouched, outside and inside
        assert {k: v for k, v in after.items() if not k.startswith("mailboxes")} == outside_before
        assert all(after[k] == before[k] for k in after if before[k][0] != "dir")
        assert real.errors == [] and dry.errors == []
        assert dry.stats == real.stats
        messages_gone = {k for k in removed if k.split("/")[-2:-1] in (["cur"], ["new"], ["tmp"])}
        assert real.stats.messages_removed == len(messages_gone)
        assert real.stats.accounts_scanned == len(accts)
