"""Safety: symlinks are never followed, time zones do not matter, kills are harmless."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from chatmail_services.expire.rules import Policy
from expire.relaytree import NOW, Relay, reap, snapshot
from hypothesis import given, settings
from hypothesis import strategies as st

from chatmail_services.layout import DAY

EXE = str(Path(sys.executable).parent / "chatmail-expire")
HOUR = 3600
A = "alice0001@chat.example"
B = "bob000002@chat.example"


def cli(config_path: Path, *args: str, env: dict[str, str] | None = None):
    return subprocess.run(
        [EXE, "--config", str(config_path), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        cwd=config_path.parent,
    )


# -- symlinks --


def test_planted_symlinks_are_never_followed(config, tmp_path):
    relay = Relay(Path(config.chatmail.mailboxes_dir), now=int(time.time()))
    outside = tmp_path / "outside"
    victim = Relay(outside, now=relay.now)  # an old maildir outside mailboxes_dir
    victim.account("victim@elsewhere", login_days_ago=365, folders=(".Sent",))
    for box in ("cur", "new", "tmp"):
        victim.message("victim@elsewhere", age=100 * DAY, box=box)
        victim.message("victim@elsewhere", age=100 * DAY, box=box, folder=".Sent")
    vhome = outside / "victim@elsewhere"
    old_file = victim.message("victim@elsewhere", age=100 * DAY)
    outside_before = snapshot(outside)

    # an account directory that is a symlink to an old, inactive account
    os.symlink(vhome, relay.root / "linked@chat.example")
    # an active account with a symlinked folder, a symlinked box and a symlinked message
    relay.account(A, folders=(".DeltaChat",))
    os.symlink(vhome / ".Sent", relay.root / A / ".Evil")
    shutil.rmtree(relay.root / A / ".DeltaChat" / "cur")
    os.symlink(vhome / "cur", relay.root / A / ".DeltaChat" / "cur")
    planted = relay.root / A / "cur" / old_file.name
    os.symlink(old_file, planted)
    own_old = relay.message(A, age=30 * DAY)
    # an inactive account whose tree holds symlinks to outside directories and files
    relay.account(B, login_days_ago=100)
    os.symlink(vhome, relay.root / B / ".Linked")
    os.symlink(vhome / "cur", relay.root / B / "new" / "dir-link")
    os.symlink(old_file, relay.root / B / "cur" / old_file.name)
    relay.message(B, age=DAY)

    for args in ((), ("--remove",)):
        result = cli(Path(config.path), *args)
        assert result.returncode == 0, result.stderr
        assert snapshot(outside) == outside_before
    assert not own_old.exists()
    assert planted.is_symlink()  # not a message: left alone
    assert (relay.root / A / ".Evil").is_symlink()
    assert (relay.root / A / ".DeltaChat" / "cur").is_symlink()
    assert (relay.root / "linked@chat.example").is_symlink()
    assert not os.path.lexists(relay.root / B)  # links removed, targets kept
    assert "scanned 2 accounts" in result.stdout  # the account symlink is not an account


# -- time zones --


@pytest.mark.parametrize("tz", ["XYZ-14", "ABC+12", "Europe/Berlin"])
def test_time_zone_does_not_matter(make_config, tmp_path, tz):
    config = make_config()
    relay = Relay(Path(config.chatmail.mailboxes_dir), now=int(time.time()))
    relay.account(A)
    # ages a few hours either side of the thresholds: a local-time mistake would flip them
    kept = [relay.message(A, age=20 * DAY - 3 * HOUR), relay.message(A, age=7 * DAY - 3 * HOUR)]
    gone = [relay.message(A, age=20 * DAY + 3 * HOUR)]
    relay.account("login0089@chat.example", login_days_ago=89)
    relay.account("login0091@chat.example", login_days_ago=91)
    snapshots = {}
    for zone in ("UTC", tz):
        copy = tmp_path / f"copy-{zone.replace('/', '_')}"
        shutil.copytree(relay.root, copy, symlinks=True)
        ini = tmp_path / f"{zone.replace('/', '_')}.ini"
        ini.write_text(Path(config.path).read_text().replace(str(relay.root), str(copy)))
        result = cli(ini, "--remove", env={"TZ": zone})
        assert result.returncode == 0, result.stderr
        snapshots[zone] = snapshot(copy)
        names = set(snapshots[zone])
        assert all(str(p.relative_to(relay.root)) in names for p in kept)
        assert not any(str(p.relative_to(relay.root)) in names for p in gone)
        assert "login0089@chat.example" in names and "login0091@chat.example" not in names
    assert snapshots["UTC"] == snapshots[tz]


# -- interruptions --


class Killed(BaseException):
    """Stands for SIGKILL at one point of the run."""


def interrupted_tree(root: Path) -> None:
    relay = Relay(root)
    relay.account(A, folders=(".DeltaChat", ".Sent"))
    relay.maildirsize(A)
    for i in range(12):  # quota trim (100K quota) plus age and large deletions
        relay.message(A, age=(i + 2) * DAY, size=9000, folder=[".DeltaChat", "", ".Sent"][i % 3])
    relay.message(A, age=25 * DAY, box="tmp")
    relay.message(A, age=8 * DAY, size=12000)
    relay.account(B, login_days_ago=100, folders=(".DeltaChat",))
    for i in range(6):
        relay.message(B, age=i * DAY, folder=".DeltaChat")
    relay.maildirsize(B)
    empty = root / "empty@chat.example"
    empty.mkdir()
    os.utime(empty, (NOW - 2 * HOUR,) * 2)


POLICY = Policy(max_mailbox_size=100 * 1024, large_size=10000)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """The tree before any run, and the state one uninterrupted run leaves."""
    top = tmp_path_factory.mktemp("interrupt")
    interrupted_tree(top / "pristine")
    shutil.copytree(top / "pristine", top / "reference", symlinks=True)
    out = reap(top / "reference", POLICY, NOW)
    assert out.stats.messages_by_rule["quota"] > 0 and out.stats.accounts_removed == 1
    return top, snapshot(top / "reference")


def mutations(monkeypatch, kill_at: list[int]) -> list[int]:
    """Make os.unlink/os.rmdir raise Killed before the calls numbered in `kill_at`."""
    calls = [0]
    for name in ("unlink", "rmdir"):
        real = getattr(os, name)

        def wrapper(*args, _real=real, **kwargs):
            calls[0] += 1
            if calls[0] in kill_at:
                raise Killed
            return _real(*args, **kwargs)

        monkeypatch.setattr(os, name, wrapper)
    return calls


def test_killed_at_every_point_then_rerun_ends_the_same(pristine, monkeypatch):
    top, reference = pristine
    work = top / "counting"
    shutil.copytree(top / "pristine", work, symlinks=True)
    with monkeypatch.context() as m:
        calls = mutations(m, [])
        reap(work, POLICY, NOW)
    total = calls[0]
    assert total > 30
    for point in range(1, total + 1):
        work = top / f"kill-{point}"
        shutil.copytree(top / "pristine", work, symlinks=True)
        with monkeypatch.context() as m:
            mutations(m, [point])
            with pytest.raises(Killed):
                reap(work, POLICY, NOW)
        reap(work, POLICY, NOW)
        assert snapshot(work) == reference, f"killed before mutation {point}"
        shutil.rmtree(work)


@settings(max_examples=25)
@given(points=st.lists(st.integers(1, 40), min_size=1, max_size=4))
def test_killed_repeatedly_then_rerun_ends_the_same(pristine, points):
    top, reference = pristine
    work = top / "repeated"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(top / "pristine", work, symlinks=True)
    mp = pytest.MonkeyPatch()
    try:
        for point in points:
            with mp.context() as m:
                mutations(m, [point])
                with contextlib.suppress(Killed):
                    reap(work, POLICY, NOW)
    finally:
        mp.undo()
    reap(work, POLICY, NOW)
    assert snapshot(work) == reference


def test_sigkill_at_random_moments_then_rerun_ends_the_same(make_config, tmp_path):
    config = make_config(chatmail={"max_mailbox_size": "200K"})
    relay = Relay(Path(config.chatmail.mailboxes_dir), now=int(time.time()))
    rng = random.Random(4)
    for i in range(60):
        address = f"user{i:04d}@chat.example"
        relay.account(address, login_days_ago=100 if i % 5 == 0 else 1, folders=(".DeltaChat",))
        relay.maildirsize(address)
        for _ in range(40):  # ages at whole hours: hours away from every threshold
            age = rng.randrange(1, 40 * 24) * HOUR + HOUR // 2
            folder = rng.choice(["", ".DeltaChat"])
            box = rng.choice(["cur", "new"])
            relay.message(address, age=age, size=rng.randrange(100, 9000), folder=folder, box=box)
    pristine = tmp_path / "pristine"
    shutil.copytree(relay.root, pristine, symlinks=True)
    started = time.monotonic()
    result = cli(Path(config.path), "--remove")
    duration = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    reference = snapshot(relay.root)

    work = tmp_path / "work"
    shutil.copytree(pristine, work, symlinks=True)
    ini = tmp_path / "work.ini"
    ini.write_text(Path(config.path).read_text().replace(str(relay.root), str(work)))
    states = set()
    killed_running = 0
    for _ in range(6):
        proc = subprocess.Popen([EXE, "--config", str(ini), "--remove"], cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(rng.uniform(0, duration))
        if proc.poll() is None:
            killed_running += 1
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        states.add(len(snapshot(work)))
    assert killed_running >= 1
    result = cli(ini, "--remove")
    assert result.returncode == 0, result.stderr
    assert snapshot(work) == reference


# -- a live relay --


def test_concurrent_deliveries_moves_and_expunges_are_normal(relay):
    """Dovecot's activity during a pass: deliveries (tmp/ -> new/), new/ -> cur/ renames and
    expunges. No errors; what the pass misses the next one takes; nothing young is lost."""
    rng = random.Random(7)
    addresses = [f"user{i:04d}@chat.example" for i in range(20)]
    old, young = [], []
    for address in addresses:
        relay.account(address, folders=(".DeltaChat",))
        for _ in range(60):
            folder = rng.choice(["", ".DeltaChat"])
            old.append(relay.message(address, age=25 * DAY, folder=folder, box="new"))
            young.append(relay.message(address, age=DAY, folder=folder, box="cur"))
    stop = threading.Event()
    delivered: list[Path] = []
    actions = [0]

    def dovecot() -> None:
        while not stop.is_set():
            victim = rng.choice(old)
            action = rng.random()
            try:
                if action < 0.4:  # a client opened the folder: new/ -> cur/
                    victim.rename(victim.parent.parent / "cur" / (victim.name + ":2,S"))
                elif action < 0.7:  # expunge
                    victim.unlink()
                else:  # delivery: written in tmp/, renamed into new/
                    address = rng.choice(addresses)
                    path = relay.message(address, age=0, box="tmp")
                    target = path.parent.parent / "new" / path.name
                    path.rename(target)
                    delivered.append(target)
            except FileNotFoundError:
                continue
            actions[0] += 1

    worker = threading.Thread(target=dovecot)
    worker.start()
    try:
        first = reap(relay.root, Policy(), relay.now)
    finally:
        stop.set()
        worker.join()
    assert first.errors == []
    assert actions[0] > 10, "nothing happened during the pass"
    second = reap(relay.root, Policy(), relay.now)
    assert second.errors == []
    assert all(p.exists() for p in young + delivered)
    assert not any(p.name.startswith(str(relay.now - 25 * DAY)) for p in relay.root.rglob("*"))
