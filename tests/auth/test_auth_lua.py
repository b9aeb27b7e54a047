"""The Lua front end (chatmail-auth.lua, the Dovecot 2.4 way) behind real Dovecot 2.3.

Dovecot's Lua passdb/userdb sends the dict path's lookups to the same chatmail-auth: the same
accounts, rules and refusals. Hostile names and passwords go through both front ends (two
Dovecots on one responder) and must come out the same; an unreachable or garbled core is a
temporary failure, never a login, and Dovecot keeps running.
"""

from __future__ import annotations

import contextlib
import imaplib
import os
import shutil
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from auth.dovecotauth import Outcome, plain_login, userdb_lookup
from chatmail_services.authsocket.hashing import verify_password
from harness import MAIL_USER, mail_ids
from harness.authtools import start_auth
from harness.dovecot import Dovecot
from harness.fixtures import stack_config
from hypothesis import given, settings
from hypothesis import strategies as st

from chatmail_services import layout
from chatmail_services.address import local_part

pytestmark = pytest.mark.stack

ADDRESS = "127.0.0.24"
DOMAIN = "chat.example"
USER = f"luafirst1@{DOMAIN}"
PASSWORD = "pass'wo\"rd\\1/x%"


def make_dovecot(root: Path, config, auth_socket: Path, auth: str) -> Dovecot:
    """A Dovecot on ADDRESS answering failed logins at once (no 2 s auth_failure_delay)."""
    root.mkdir(exist_ok=True)
    dovecot = Dovecot(root, config, auth_socket=auth_socket, auth=auth, address=ADDRESS)
    dovecot.conf.write_text(dovecot.conf.read_text() + "auth_failure_delay = 0\n")
    return dovecot


class Responder:
    """chatmail-auth (harness.activation, through authtools.start_auth) that a test can take
    away entirely, process and socket (`stop`), and bring back (`start`)."""

    def __init__(self, config, run: Path) -> None:
        self.config, self.run = config, run
        self.service = start_auth(config, run, user=MAIL_USER)
        self.socket = self.service.socket_path

    def stop(self) -> int | None:
        """Stop the process and close and remove its socket; its exit status."""
        return self.service.close()

    def start(self) -> None:
        self.service = start_auth(self.config, self.run, user=MAIL_USER)

    def log_text(self) -> str:
        return self.service.log_text()


@contextlib.contextmanager
def responder(root: Path, config) -> Iterator[Responder]:
    """chatmail-auth as the mail user under socket activation; stops cleanly, logs no error."""
    run = root / "run"
    run.mkdir(exist_ok=True)
    os.chown(run, *mail_ids())
    auth = Responder(config, run)
    try:
        yield auth
    finally:
        status = auth.stop()
    log = auth.log_text()
    assert status == 0 and "Traceback" not in log and "ERROR" not in log, log


@contextlib.contextmanager
def lua_stack(root: Path, **sections) -> Iterator[tuple[Dovecot, Responder, Path]]:
    config = stack_config(root, **sections)
    with responder(root, config) as auth:
        dovecot = make_dovecot(root / "lua", config, auth.socket, "lua")
        with dovecot:
            try:
                yield dovecot, auth, Path(config.chatmail.mailboxes_dir)
            finally:
                print(dovecot.log_text(), auth.log_text())  # shown when a test fails
            assert_running(dovecot)


def assert_running(dovecot: Dovecot) -> None:
    """Dovecot's master is alive and its auth service still answers."""
    pid = int((dovecot.base_dir / "master.pid").read_text())
    os.kill(pid, 0)
    kind, _ = userdb_lookup(dovecot.base_dir / "auth-userdb", f"nobody123@{DOMAIN}")
    assert kind in ("NOTFOUND", "FAIL")
    assert "Fatal" not in dovecot.log_text() and "Panic" not in dovecot.log_text()


def imap(dovecot: Dovecot) -> imaplib.IMAP4_SSL:
    return imaplib.IMAP4_SSL(
        ADDRESS, dovecot.imaps_port, ssl_context=ssl._create_unverified_context(), timeout=30
    )


def imap_login(dovecot: Dovecot, user: str, password: str) -> imaplib.IMAP4_SSL:
    client = imap(dovecot)
    client.login(user, password)
    return client


def imap_refusal(dovecot: Dovecot, user: str, password: str) -> str:
    """The response code of a refused IMAP LOGIN: AUTHENTICATIONFAILED or UNAVAILABLE."""
    client = imap(dovecot)
    try:
        with pytest.raises(imaplib.IMAP4.error) as refused:
            client.login(user, password)
    finally:
        client.shutdown()
    text = str(refused.value)
    for code in ("AUTHENTICATIONFAILED", "UNAVAILABLE"):
        if f"[{code}]" in text:
            return code
    raise AssertionError(text)


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path under root (files with their content), for before/after comparisons."""
    out: dict[str, bytes | None] = {}
    for dirpath, _dirs, files in os.walk(root):
        out[dirpath] = None
        for name in files:
            path = os.path.join(dirpath, name)
            out[path] = Path(path).read_bytes()
    return out


def test_imap_first_login_creates_wrong_password_changes_nothing_last_login(stack_root):
    with lua_stack(stack_root) as (dovecot, _auth, mailboxes):
        home = mailboxes / USER
        client = imap_login(dovecot, USER, PASSWORD)
        assert client.select("INBOX")[0] == "OK"  # Dovecot made its Maildir in our home
        client.logout()
        stored = (home / "password").read_text().strip()
        assert verify_password(PASSWORD.encode(), stored)
        assert (home / "enforceE2EEincoming").exists()
        assert (home.stat().st_uid, home.stat().st_gid) == mail_ids()
        # the userdb reply arrives whole (quota from max_mailbox_size, numeric ids)
        info = dovecot.doveadm("user", USER).stdout
        assert "*:storage=512000" in info and f"uid\t{mail_ids()[0]}\n" in info
        assert dovecot.doveadm("user", "*").stdout.split() == [USER]
        # a wrong password: refused as a failure (not temporary), nothing changes
        os.utime(home / "password", (86400 * 3, 86400 * 3))
        before = tree(mailboxes)
        assert imap_refusal(dovecot, USER, "wrong-password-x") == "AUTHENTICATIONFAILED"
        assert tree(mailboxes) == before
        assert (home / "password").stat().st_mtime == 86400 * 3
        # an address that may not exist (local part too short) gets nothing
        assert imap_refusal(dovecot, f"short@{DOMAIN}", PASSWORD) == "AUTHENTICATIONFAILED"
        assert sorted(os.listdir(mailboxes)) == [USER]
        # a successful login records the last-login day (the last_login plugin, as before)
        imap_login(dovecot, USER, PASSWORD).logout()
        today = layout.day_start(time.time())
        deadline = time.monotonic() + 15
        while (home / "password").stat().st_mtime != today:
            assert time.monotonic() < deadline, "last login was not recorded"
            time.sleep(0.05)


@pytest.mark.parametrize(
    "refusal",
    [
        pytest.param({}, id="kill-switch"),
        pytest.param({"min_free_disk": 1 << 60}, id="no-disk-headroom"),
        pytest.param({"min_available_memory": 1 << 60}, id="no-memory-headroom"),
    ],
)
def test_refused_creation_is_a_temporary_failure(stack_root, refusal):
    existing = f"existing1@{DOMAIN}"
    with lua_stack(stack_root) as (dovecot, auth, mailboxes):
        imap_login(dovecot, existing, PASSWORD).logout()
    # restart with the refusal in place (headroom limits are read at start)
    shutil.rmtree(stack_root / "lua")
    shutil.rmtree(stack_root / "run")
    with lua_stack(stack_root, auth=refusal) as (dovecot, auth, mailboxes):
        if not refusal:
            Path(auth.config.auth.nocreate_file).touch()
        new = f"refused01@{DOMAIN}"
        assert imap_refusal(dovecot, new, PASSWORD) == "UNAVAILABLE"
        assert plain_login(dovecot.sasl_socket, new.encode(), PASSWORD.encode()).kind == (
            "tempfail"
        )
        assert not (mailboxes / new).exists()
        # existing accounts keep working; their wrong passwords stay plain failures
        imap_login(dovecot, existing, PASSWORD).logout()
        assert imap_refusal(dovecot, existing, "wrong-password-x") == "AUTHENTICATIONFAILED"


def test_unreachable_core_is_a_temporary_failure_never_a_login(stack_root):
    with lua_stack(stack_root) as (dovecot, auth, mailboxes):
        imap_login(dovecot, USER, PASSWORD).logout()  # the workers now keep connections
        auth.stop()
        for _ in range(3):  # whichever worker answers: its kept connection is dead
            assert imap_refusal(dovecot, USER, PASSWORD) == "UNAVAILABLE"
        auth.socket.unlink(missing_ok=True)  # no socket at all
        assert imap_refusal(dovecot, USER, PASSWORD) == "UNAVAILABLE"
        outcome = plain_login(dovecot.sasl_socket, f"newcomer1@{DOMAIN}".encode(), b"x" * 12)
        assert outcome.kind == "tempfail"
        assert userdb_lookup(dovecot.base_dir / "auth-userdb", USER)[0] == "FAIL"
        assert not (mailboxes / f"newcomer1@{DOMAIN}").exists()
        assert_running(dovecot)
        auth.start()  # back: logins work again, on new connections
        imap_login(dovecot, USER, PASSWORD).logout()


GARBLED = [  # neither a passdb nor a userdb answer
    b"",  # closes without a reply
    b"X\n",
    b"Onot json\n",
    b"O[1,2]\n",
    b'O"a string"\n',
    b'O{"password": "{PLAIN}guessme12", "uid": [1]}\n',
    b'O{"password": "{PLAIN}guessme12", "uid": 1.5}\n',
    b'O{"password": "{PLAIN}guessme12", "uid": null}\n',
    b"Nsomething\n",
]
NOT_PASSDB = [  # a userdb may answer so, a passdb may not: no hash with its {SCHEME}
    b'O{"home": "/x"}\n',
    b'O{"password": 5}\n',
    b'O{"password": "guessme12"}\n',
]


@contextlib.contextmanager
def garbling_server(path: Path, reply: bytes) -> Iterator[None]:
    """A broken peer on the auth socket path: reads a request, answers `reply`, closes."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    os.chmod(path, 0o666)
    listener.listen(64)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                with contextlib.suppress(OSError):
                    data = b""
                    while not any(line[:1] in (b"L", b"I") for line in data.split(b"\n")[:-1]):
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    conn.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(5)
        path.unlink()


def test_garbled_answers_are_temporary_failures(stack_root):
    config = stack_config(stack_root)
    sock = stack_root / "garbled.sock"
    with make_dovecot(stack_root / "lua", config, sock, "lua") as dovecot:
        for reply in GARBLED + NOT_PASSDB:
            with garbling_server(sock, reply):
                outcome = plain_login(dovecot.sasl_socket, USER.encode(), b"guessme12")
                assert outcome.kind == "tempfail", (reply, outcome)
                kind, _ = userdb_lookup(dovecot.base_dir / "auth-userdb", USER)
                assert kind == ("USER" if reply in NOT_PASSDB else "FAIL"), reply
        # the well-formed answers are understood (the test server is not broken itself)
        with garbling_server(sock, b'O{"password": "{PLAIN}guessme12", "uid": 1}\n'):
            assert plain_login(dovecot.sasl_socket, USER.encode(), b"guessme12").kind == "ok"
        with garbling_server(sock, b"N\n"):
            assert plain_login(dovecot.sasl_socket, USER.encode(), b"guessme12").kind == "fail"
        assert_running(dovecot)


# -- hostile input through both front ends --

FRAGMENTS = st.sampled_from(
    ["..", "../", "/", "./", "\0", "\t", "%", "%u", "%{user}", '"', "'", "\\", "\\\\", '\\"',
     "é", "ß", "\u202e", "\U0001f600", "\x01", "\x7f", " ", "*", "?", "A", "Z", "x" * 300,
     "@", "@chat.example", "chat.example", "abc", "123456789", "-", "_", ".", ";", "$(id)"]
)  # fmt: skip
LOCALS = st.one_of(
    st.from_regex(r"[a-z0-9]{9}", fullmatch=True),  # valid: the account gets created
    st.lists(st.one_of(FRAGMENTS, st.text(max_size=4)), min_size=1, max_size=6).map("".join),
)
USERS = st.one_of(
    LOCALS.map(lambda local: f"{local}@{DOMAIN}"),
    st.tuples(LOCALS, st.sampled_from(["other.example", "CHAT.EXAMPLE", "chat.example/.."])).map(
        "@".join
    ),
    LOCALS,
)
PASSWORDS = st.one_of(
    st.lists(st.one_of(FRAGMENTS, st.text(max_size=8)), min_size=1, max_size=6).map("".join),
    st.just("long-enough-password"),
)


def as_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def accounts(mailboxes: Path) -> set[str]:
    return set(os.listdir(mailboxes))


def test_hostile_names_and_passwords_are_refused_the_same_way_on_both_paths(stack_root):
    config = stack_config(stack_root)
    mailboxes = Path(config.chatmail.mailboxes_dir)
    with responder(stack_root, config) as auth:
        dict_dovecot = make_dovecot(stack_root / "dict", config, auth.socket, "dict")
        lua_dovecot = make_dovecot(stack_root / "lua", config, auth.socket, "lua")
        with dict_dovecot, lua_dovecot:
            before = set(os.listdir(stack_root))
            seen: list[str] = []

            def through(dovecot: Dovecot, user: str, password: str) -> tuple[str, set[str]]:
                outcome: Outcome = plain_login(
                    dovecot.sasl_socket, as_bytes(user), as_bytes(password)
                )
                created = accounts(mailboxes)
                for name in created:  # the next path must meet the same empty root
                    shutil.rmtree(mailboxes / name)
                return outcome.kind, created

            @settings(max_examples=60, deadline=None)
            @given(USERS, PASSWORDS)
            def check(user: str, password: str) -> None:
                over_dict = through(dict_dovecot, user, password)
                over_lua = through(lua_dovecot, user, password)
                assert over_lua == over_dict, (user, password)
                kind, created = over_dict
                assert kind != "tempfail"  # nothing here is a temporary condition
                for name in created:  # only the normalized address of ours, in the root
                    assert name == user.lower() and local_part(DOMAIN, name), name
                if kind == "ok":
                    seen.append(user)

            check()
            # the name userdb lookups see (Dovecot refuses TAB/LF in the master protocol)
            for user in ["../../etc@chat.example", 'a"b\\c@chat.example', "é@chat.example",
                         "%u@chat.example", "x" * 300 + "@chat.example", USER]:  # fmt: skip
                replies = [
                    userdb_lookup(d.base_dir / "auth-userdb", user)[0]
                    for d in (dict_dovecot, lua_dovecot)
                ]
                assert replies == ["NOTFOUND", "NOTFOUND"], (user, replies)
            assert set(os.listdir(stack_root)) == before
            assert accounts(mailboxes) == set()
            assert seen, "no example created an account: the comparison saw no success"
            for dovecot in (dict_dovecot, lua_dovecot):
                assert_running(dovecot)
