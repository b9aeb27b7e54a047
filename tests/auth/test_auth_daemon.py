"""The real daemon, socket-activated (harness.activation): protocol, robustness, concurrency,
shutdown."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

from harness.authtools import (
    HELLO_AUTH,
    HELLO_LASTLOGIN,
    esc_e,
    exchange,
    passdb_lookup,
    read_all,
    start_auth,
    userdb_lookup,
)
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from chatmail_services import layout

USER = "abcdefghi@chat.example"
PASSWORD = "s3cret-passw0rd"


def value(reply: bytes) -> dict:
    assert reply.startswith(b"O"), reply
    return json.loads(reply[1:])


def test_hello_and_lookups(daemon, config):
    home = Path(config.chatmail.mailboxes_dir) / USER
    [missing] = exchange(daemon.socket_path, HELLO_AUTH + userdb_lookup(USER), 1)
    assert missing == b"N"
    [created] = exchange(daemon.socket_path, HELLO_AUTH + passdb_lookup(USER, PASSWORD), 1)
    fields = value(created)
    assert fields["password"] == (home / "password").read_text().strip()
    assert fields["home"] == str(home)
    assert isinstance(fields["uid"], int) and isinstance(fields["gid"], int)
    assert fields["quota_rule"] == "*:storage=512000"
    assert fields["quota_storage_size"] == 524288000
    [user] = exchange(daemon.socket_path, HELLO_AUTH + userdb_lookup(USER), 1)
    assert value(user) == {k: v for k, v in fields.items() if k != "password"}
    # Dovecot 2.4 says hello with major 4 and may add fields
    [again] = exchange(
        daemon.socket_path, b"H4\t0\t0\t\tauth\tmore\n" + passdb_lookup(USER, "x" * 9), 1
    )
    assert value(again)["password"] == fields["password"]
    [other] = exchange(daemon.socket_path, HELLO_AUTH + b"Lshared/something/else\t\n", 1)
    assert other == b"N"


def test_passwords_with_quotes_backslashes_and_slashes(daemon, config):
    password = "a\"b'c\\d/e\\\"f'' x"
    [reply] = exchange(daemon.socket_path, HELLO_AUTH + passdb_lookup(USER, password), 1)
    stored = value(reply)["password"]
    check = subprocess.run(["doveadm", "pw", "-t", stored, "-p", password], capture_output=True)
    assert check.returncode == 0, check.stderr
    # the same password again, with the same escaping, finds the same hash
    [reply] = exchange(daemon.socket_path, HELLO_AUTH + passdb_lookup(USER, password), 1)
    assert value(reply)["password"] == stored
    assert esc_e(password) != password


def test_iteration_ends_with_an_empty_line(daemon, config):
    users = [f"user{i:05d}@chat.example" for i in range(3)]
    for user in users:
        exchange(daemon.socket_path, HELLO_AUTH + passdb_lookup(user, PASSWORD), 1)
    (Path(config.chatmail.mailboxes_dir) / "notanacct").mkdir()
    lines = exchange(daemon.socket_path, HELLO_AUTH + b"I0\t0\tshared/userdb/\t\n", 4)
    assert sorted(lines[:3]) == [f"Oshared/userdb/{u}\t".encode() for u in users]
    assert lines[3] == b""
    # max_rows is honoured, and the end line still comes; then the connection still serves
    lines = exchange(
        daemon.socket_path, HELLO_AUTH + b"I0\t2\tshared/userdb/\t\n" + userdb_lookup(users[0]), 4
    )
    assert len([x for x in lines[:2] if x.startswith(b"Oshared/userdb/")]) == 2
    assert lines[2] == b""
    assert value(lines[3])["home"].endswith(users[0])
    # iterating elsewhere: just the end
    assert exchange(daemon.socket_path, HELLO_AUTH + b"I0\t0\tshared/other/\t\n", 1) == [b""]


def test_lastlogin_transactions(daemon, config):
    exchange(daemon.socket_path, HELLO_AUTH + passdb_lookup(USER, PASSWORD), 1)
    password_file = Path(config.chatmail.mailboxes_dir) / USER / "password"
    os.utime(password_file, (86400, 86400))
    key = f"shared/last-login/{USER}".encode()
    # rollback: nothing changes
    replies = exchange(
        daemon.socket_path,
        HELLO_LASTLOGIN + b"B1\t" + USER.encode() + b"\nS1\t" + key + b"\t1700000000\nR1\nC1\n",
        1,
    )
    assert replies == [b"N"]  # rolled back: unknown id now
    assert password_file.stat().st_mtime == 86400
    # Dovecot 2.4 sends an extra field in B
    replies = exchange(
        daemon.socket_path,
        b"H4\t0\t0\t\tlastlogin\nB7\t" + USER.encode() + b"\textra\nS7\t" + key
        + b"\t1700000000\nC7\nC99\n",
        2,
    )  # fmt: skip
    assert replies == [b"O", b"N"]
    assert password_file.stat().st_mtime == layout.day_start(time.time())
    # an unknown account gets no directory
    replies = exchange(
        daemon.socket_path,
        HELLO_LASTLOGIN + b"B1\t\nS1\tshared/last-login/nobodyxx@chat.example\t1\nC1\n",
        1,
    )
    assert replies == [b"O"]
    assert sorted(os.listdir(config.chatmail.mailboxes_dir)) == [USER]
    # the auth dict is read-only
    replies = exchange(daemon.socket_path, HELLO_AUTH + b"B1\t\nS1\tshared/x\ty\nC1\n", 1)
    assert replies[0].startswith(b"F1\t")


def test_pipelined_commands_answered_in_order(daemon):
    users = [f"pipe{i:05d}@chat.example" for i in range(20)]
    data = HELLO_AUTH
    for user in users:
        data += userdb_lookup(user) + passdb_lookup(user, PASSWORD) + userdb_lookup(user)
    replies = exchange(daemon.socket_path, data, 60)
    for i, user in enumerate(users):
        before, created, after = replies[3 * i : 3 * i + 3]
        assert before == b"N"
        assert value(created)["home"].endswith("/" + user)
        assert value(after)["home"].endswith("/" + user)


def test_unknown_and_malformed_lines_get_F_and_the_connection_lives_on(daemon):
    data = (
        HELLO_AUTH + b"Xnonsense\n\nI\nIx\ty\tz\nC\nB\nS1\n"
        + b"\xff\xfe\x00garbage\n" + userdb_lookup(USER)
    )  # fmt: skip
    replies = exchange(daemon.socket_path, data, 7)
    assert [r[:1] for r in replies[:6]] == [b"F"] * 6
    assert replies[6] == b"N"
    # no hello at all, or an unknown dict name: lookups fail, the server does not hang
    assert exchange(daemon.socket_path, userdb_lookup(USER), 1)[0].startswith(b"F")
    assert (
        exchange(daemon.socket_path, b"H3\t2\t0\t\tnope\n" + userdb_lookup(USER), 1)[0][:1] == b"F"
    )
    assert (
        exchange(daemon.socket_path, b"H9\t0\t0\t\tauth\n" + userdb_lookup(USER), 1)[0][:1] == b"F"
    )


def test_overlong_line_is_refused_and_skipped(daemon):
    out = read_all(
        daemon.socket_path, HELLO_AUTH + b"L" + b"x" * 200_000 + b"\n" + userdb_lookup(USER)
    )
    assert out == b"Fline too long\nN\n"


@given(st.lists(st.binary(max_size=200), min_size=1, max_size=5))
@hsettings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=150)
def test_arbitrary_byte_lines_never_crash_the_server(daemon, lines):
    payload = b"".join(line.replace(b"\n", b"") + b"\n" for line in lines)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(daemon.socket_path))
        sock.sendall(HELLO_AUTH + payload)
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(65536):
            pass  # the server answers what is due and closes after our EOF: no hang
    assert daemon.alive
    assert exchange(daemon.socket_path, HELLO_AUTH + userdb_lookup(USER), 1) == [b"N"]


def test_500_concurrent_connections(daemon):
    socks = []
    try:
        for i in range(500):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(30)
            sock.connect(str(daemon.socket_path))
            sock.sendall(HELLO_AUTH + userdb_lookup(f"conc{i:05d}@chat.example"))
            socks.append(sock)
        # all 500 are open at once; every one gets its answer
        for sock in socks:
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = sock.recv(100)
                assert chunk
                buf += chunk
            assert buf == b"N\n"
    finally:
        for sock in socks:
            sock.close()


def test_50_simultaneous_first_logins_one_hash(daemon, config):
    barrier = threading.Barrier(50)
    replies: list[bytes] = []

    def login():
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(30)
            sock.connect(str(daemon.socket_path))
            barrier.wait()
            sock.sendall(HELLO_AUTH + passdb_lookup(USER, PASSWORD))
            buf = b""
            while not buf.endswith(b"\n"):
                buf += sock.recv(4096)
            replies.append(buf.strip())

    threads = [threading.Thread(target=login) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(replies) == 50
    hashes = {value(r)["password"] for r in replies}
    home = Path(config.chatmail.mailboxes_dir) / USER
    assert hashes == {(home / "password").read_text().strip()}
    [stored] = hashes
    check = subprocess.run(["doveadm", "pw", "-t", stored, "-p", PASSWORD], capture_output=True)
    assert check.returncode == 0  # every one of the 50 logins succeeds in Dovecot
    assert sorted(os.listdir(home)) == ["enforceE2EEincoming", "password"]


def test_path_escapes_refused(daemon, tmp_path):
    before = {str(p) for p in tmp_path.rglob("*")}
    names = ["../x@chat.example", "a/b@chat.example", ".hiddenxx@chat.example",
             "../../etc@chat.example", "abcd/../ef@chat.example"]  # fmt: skip
    for name in names:
        assert exchange(daemon.socket_path, HELLO_AUTH + passdb_lookup(name, PASSWORD), 1) == [b"N"]
    nul = HELLO_AUTH + b"Lshared/passdb/" + PASSWORD.encode() + b'"abc\x00defgh@chat.example\t\n'
    assert exchange(daemon.socket_path, nul, 1) == [b"N"]
    escaped_nul = HELLO_AUTH + b"Lshared/userdb/abc\x010defgh@chat.example\t\n"
    assert exchange(daemon.socket_path, escaped_nul, 1) == [b"N"]
    after = {str(p) for p in tmp_path.rglob("*")} - {str(tmp_path / "auth-daemon.log")}
    assert after - before == set()


def test_nocreate_answers_temporary_failure(daemon, config):
    exchange(daemon.socket_path, HELLO_AUTH + passdb_lookup(USER, PASSWORD), 1)
    Path(config.auth.nocreate_file).touch()
    [reply] = exchange(
        daemon.socket_path, HELLO_AUTH + passdb_lookup("newaccoun@chat.example", "x" * 9), 1
    )
    assert reply.startswith(b"F") and b"nocreate" in reply
    [reply] = exchange(daemon.socket_path, HELLO_AUTH + passdb_lookup(USER, PASSWORD), 1)
    assert reply.startswith(b"O")


def test_sigterm_finishes_pending_creations(daemon, config):
    assert exchange(daemon.socket_path, HELLO_AUTH + userdb_lookup(USER), 1) == [b"N"]  # serving
    socks = []
    for i in range(20):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(30)
        sock.connect(str(daemon.socket_path))
        sock.sendall(HELLO_AUTH + passdb_lookup(f"term{i:05d}@chat.example", PASSWORD))
        socks.append(sock)
    time.sleep(0.05)
    assert daemon.close() == 0  # service and socket stopped: nothing waits for a restart
    answered = 0
    for sock in socks:
        data = sock.recv(4096)
        if data:
            assert data.startswith(b"O")
            answered += 1
        sock.close()
    assert answered >= 1
    root = Path(config.chatmail.mailboxes_dir)
    for home in root.iterdir():  # whatever was started is complete
        stored = (home / "password").read_text()
        assert stored.startswith("{SHA512-CRYPT}$6$") and stored.endswith("\n")


def test_out_of_descriptors_neither_hangs_nor_spins(config, tmp_path):
    daemon = start_auth(config, tmp_path, wrap=["prlimit", "--nofile=48", "--"])
    socks = []
    try:
        for i in range(120):  # far more than the daemon can hold open at once
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(30)
            sock.connect(str(daemon.socket_path))
            sock.sendall(HELLO_AUTH + userdb_lookup(f"fd{i:07d}@chat.example"))
            socks.append(sock)
        for sock in socks:  # answered in turn as earlier clients hang up
            assert sock.recv(100) == b"N\n"
            sock.close()
        cpu = Path(f"/proc/{daemon.process.pid}/stat").read_text().split()
        assert int(cpu[13]) + int(cpu[14]) < 500  # utime+stime ticks: it did not busy-loop
    finally:
        for sock in socks:
            sock.close()
        assert daemon.close() == 0
