"""The token file: atomic replacement, one writer at a time per account, damaged files."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from chatmail_services.metadata import store, tokens
from chatmail_services.metadata.tokens import Token

from chatmail_services import layout


def test_update_writes_atomically_and_removes_an_empty_list(tmp_path: Path):
    home = tmp_path / "a@chat.example"
    home.mkdir()
    assert store.read(home) == []
    assert store.update(home, lambda t: tokens.add(t, "1111", 5, 10, 100)) == [Token("1111", 5)]
    path = layout.device_tokens_path(home)
    assert path.read_text() == "5\t1111\n"
    assert path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in home.iterdir()) == ["devicetokens"]  # no temporary file left
    inode = path.stat().st_ino
    store.update(home, lambda t: tokens.add(t, "2222", 6, 10, 100))
    assert path.stat().st_ino != inode  # replaced by rename, never rewritten in place
    store.update(home, lambda t: [])
    assert not path.exists()


def test_concurrent_updates_of_one_account_lose_nothing(tmp_path: Path):
    home = tmp_path / "b@chat.example"
    home.mkdir()
    values = [f"tok{i:03d}" for i in range(200)]

    def set_some(chunk: list[str]) -> None:
        for value in chunk:
            store.update(home, lambda t, v=value: tokens.add(t, v, 1, 1000, 100))

    threads = [threading.Thread(target=set_some, args=(values[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(t.value for t in store.read(home)) == values


def test_a_failed_write_keeps_the_old_list(tmp_path: Path):
    home = tmp_path / "c@chat.example"
    home.mkdir()
    store.update(home, lambda t: tokens.add(t, "1111", 1, 10, 100))
    home.chmod(0o500)  # no new file can be made in the home
    try:
        if os.geteuid() == 0:  # root ignores the mode: make the temporary name a directory
            home.chmod(0o700)
            (home / f".devicetokens.{os.getpid()}.{threading.get_ident()}.tmp").mkdir()
        try:
            store.update(home, lambda t: tokens.add(t, "2222", 2, 10, 100))
        except OSError:
            pass
        else:
            raise AssertionError("the write did not fail")
    finally:
        home.chmod(0o700)
    assert store.read(home) == [Token("1111", 1)]


def test_damaged_file_is_read_as_what_can_be_read(tmp_path: Path):
    home = tmp_path / "d@chat.example"
    home.mkdir()
    layout.device_tokens_path(home).write_bytes(b"1\tgood\n\xff\xfe\n2\tbad token\n3\tok\n")
    assert store.read(home) == [Token("good", 1), Token("ok", 3)]
