"""The per-account encryption marker lookup and the body spool."""

from __future__ import annotations

import mmap

import pytest
from chatmail_services.milter.accounts import enforcement_lookup
from chatmail_services.milter.spool import Spool


@pytest.fixture
def lookup(tmp_path):
    for address, marker in (("bob123456@chat.example", True), ("carol1234@chat.example", False)):
        (tmp_path / address).mkdir()
        if marker:
            (tmp_path / address / "enforceE2EEincoming").touch()
    (tmp_path / "file12345@chat.example").write_text("not a directory")
    return enforcement_lookup(str(tmp_path), "Chat.Example")


def test_marker_decides_for_local_accounts(lookup):
    assert lookup("bob123456@chat.example")
    assert lookup("BOB123456@CHAT.EXAMPLE")
    assert not lookup("carol1234@chat.example")  # marker removed by the admin
    assert not lookup("nobody123@chat.example")  # no such account: Postfix's business
    assert not lookup("file12345@chat.example")


def test_other_domains_are_not_local(lookup):
    assert not lookup("bob123456@other.example")
    assert not lookup("bob123456@chat.example.evil")
    assert not lookup("no-at-sign")


@pytest.mark.parametrize(
    "address", ["../etc@chat.example", ".hidden@chat.example", "a/b@chat.example", "@chat.example"]
)
def test_unsafe_local_parts_fail_closed(lookup, address):
    assert lookup(address)


def test_spool_stays_in_memory_up_to_threshold(tmp_path):
    spool = Spool(10, str(tmp_path))
    spool.write(b"0123456789")
    assert not isinstance(spool.view(), mmap.mmap)  # not spooled
    assert spool.view() == b"0123456789"
    spool.close()


def test_spool_moves_to_an_unlinked_file_beyond_threshold(tmp_path):
    spool = Spool(10, str(tmp_path))
    for chunk in (b"01234", b"56789", b"x"):
        spool.write(chunk)
    assert list(tmp_path.iterdir()) == []  # unlinked at once: nothing left behind
    view = spool.view()
    assert isinstance(view, mmap.mmap)
    assert view[:] == b"0123456789x"
    assert view.find(b"9x") == 9
    spool.close()
    assert spool.size == 11
