"""The textfile publisher: atomic replacement, the final write at stop, failures survived."""

from __future__ import annotations

import logging
import os

from chatmail_services.metrics import Registry
from chatmail_services.textfile import Publisher, start_publisher, textfile_path, write_atomically


def test_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "chatmail-x.prom"
    target.write_text("old\n")
    inode = target.stat().st_ino
    write_atomically(target, "new\n")
    assert target.read_text() == "new\n"
    assert target.stat().st_ino != inode  # a new file renamed over the old one
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chatmail-x.prom"]


def test_metrics_off_without_a_directory():
    assert textfile_path("", "chatmail-x") is None
    assert start_publisher("", "chatmail-x", Registry(), 1) is None


def test_the_timer_writes_and_stop_writes_the_last_values(tmp_path):
    registry = Registry()
    counter = registry.counter("chatmail_x", "x")
    publisher = start_publisher(str(tmp_path), "chatmail-x", registry, 3600)
    path = tmp_path / "chatmail-x.prom"
    assert "chatmail_x_total 0\n" in path.read_text()  # written at start
    counter.inc()
    assert "chatmail_x_total 0\n" in path.read_text()  # no write per increment
    publisher.stop()
    assert "chatmail_x_total 1\n" in path.read_text()


def test_a_missing_directory_is_logged_once_and_retried(tmp_path, caplog):
    missing = tmp_path / "missing"
    publisher = Publisher(missing / "chatmail-x.prom", lambda: "x 1\n", 3600)
    with caplog.at_level(logging.INFO, "chatmail.metrics"):
        assert publisher.write() is False
        assert publisher.write() is False
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", f"metrics: {missing} does not exist, no metrics written")
    ]
    os.mkdir(missing)
    assert publisher.write() is True
    assert (missing / "chatmail-x.prom").read_text() == "x 1\n"
