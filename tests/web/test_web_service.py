"""chatmail-web as its units start it (socket activation, the unit's user) under bad input:
wrong methods, huge bodies, slow clients, more connections than it serves at once, a flood
beyond the rate limit; each is answered, in bounded time, and nothing is stored."""

from __future__ import annotations

import contextlib
import grp
import threading
import time
from pathlib import Path

import pytest
from chatmail_services.web.http import MAX_BODY
from chatmail_services.web.server import MAX_CONNECTIONS, REQUEST_TIMEOUT
from harness.fixtures import write_test_config
from harness.messages import wait_until
from harness.web import web_service
from web.webclient import exchange, parse_answer, read_all, request, unix_connect

PER_WINDOW = 20


@pytest.fixture
def served(stack_root: Path):
    config = write_test_config(
        stack_root,
        stack_root / "milter.sock",
        web={"new_per_window": PER_WINDOW, "new_window": 3600},
    )
    service = web_service(Path(config.path), stack_root / "run" / "web.sock", stack_root / "w.log")
    with service:
        yield service, config


def mailboxes(config) -> list[Path]:
    return list(Path(config.chatmail.mailboxes_dir).iterdir())


def test_post_get_and_wrong_methods(served):
    service, config = served
    answer = exchange(service.socket_path, request("POST"))
    assert answer.status == 200
    account = answer.json()
    assert account["email"].endswith("@chat.example") and len(account["password"]) >= 24
    assert answer.headers["cache-control"] == "no-store"
    get = exchange(service.socket_path, request("GET"))
    assert (get.status, get.headers["location"]) == (302, "dcaccount:https://chat.example/new")
    head = exchange(service.socket_path, request("HEAD"))
    assert head.status == 302 and head.body == b""
    for method in ("PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "BREW"):
        wrong = exchange(service.socket_path, request(method))
        assert wrong.status == 405 and wrong.json()["reason"], method
        assert wrong.headers["allow"] == "GET, HEAD, POST"
    assert exchange(service.socket_path, request("POST", "/other")).status == 404
    garbage = exchange(service.socket_path, b"\x16\x03\x01 not http at all\r\n\r\n")
    assert garbage.status == 400 and garbage.json()["reason"]
    assert mailboxes(config) == []
    assert "@chat.example" not in service.log_text()  # addresses at debug level only


def test_huge_bodies_and_heads_are_refused_without_reading_them(served):
    service, config = served
    started = time.monotonic()
    big = exchange(service.socket_path, request("POST", Content_Length=str(10**12)))
    assert big.status == 413 and big.json()["reason"]
    with unix_connect(service.socket_path) as sock:  # a real 64 MiB upload
        sock.sendall(request("POST", Content_Length=str(64 << 20)))
        sent = 0
        chunk = b"x" * 65536
        try:
            while sent < 64 << 20:
                sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = parse_answer(read_all(sock))
    assert answer.status == 413
    assert sent < 64 << 20, "the service read the whole body"
    over = exchange(service.socket_path, request("POST", "/new", b"x" * (MAX_BODY + 1)))
    assert over.status == 413
    head = exchange(service.socket_path, request("POST", X_Big="a" * 100000))
    assert head.status == 431
    chunked = exchange(service.socket_path, request("GET", Transfer_Encoding="chunked"))
    assert chunked.status == 501
    assert time.monotonic() - started < 10
    assert mailboxes(config) == []


def test_slow_clients_are_cut_off_and_others_still_served(served):
    service, config = served
    slow = []
    for _ in range(30):
        sock = unix_connect(service.socket_path, timeout=REQUEST_TIMEOUT + 10)
        sock.sendall(b"POST /new HTTP/1.1\r\n")
        slow.append(sock)
    stop = threading.Event()

    def trickle() -> None:  # one byte per second per connection, never finishing the head
        while not stop.wait(1):
            for sock in slow:
                with contextlib.suppress(OSError):
                    sock.send(b"X")

    feeder = threading.Thread(target=trickle, daemon=True)
    feeder.start()
    try:
        started = time.monotonic()
        assert exchange(service.socket_path, request("POST"), timeout=5).status == 200
        assert time.monotonic() - started < 2  # not queued behind the slow ones
        answers = [parse_answer(read_all(sock)) for sock in slow]
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        feeder.join()
        for sock in slow:
            sock.close()
    assert {a.status for a in answers} == {408}
    assert all(a.json()["reason"] for a in answers)
    assert REQUEST_TIMEOUT - 1 < elapsed < REQUEST_TIMEOUT + 5
    assert mailboxes(config) == []


def test_more_connections_than_served_at_once_get_503(served):
    service, _config = served
    idle = [unix_connect(service.socket_path) for _ in range(MAX_CONNECTIONS)]
    try:
        # once the server has accepted them all, one more is answered at once with 503
        def busy() -> bool:
            return exchange(service.socket_path, request("POST"), timeout=5).status == 503

        assert wait_until(busy, timeout=REQUEST_TIMEOUT / 2)
    finally:
        for sock in idle:
            sock.close()
    # and once they are gone, requests are served again
    assert wait_until(
        lambda: exchange(service.socket_path, request("POST"), timeout=5).status == 200,
        timeout=15,
    )


def test_a_flood_beyond_the_rate_limit_gets_429_and_stores_nothing(served):
    service, config = served
    statuses = []
    lock = threading.Lock()

    def client() -> None:
        for _ in range(10):
            status = exchange(service.socket_path, request("POST"), timeout=10).status
            with lock:
                statuses.append(status)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses.count(200) == PER_WINDOW
    assert statuses.count(429) == 80 - PER_WINDOW
    refused = exchange(service.socket_path, request("POST"))
    assert refused.status == 429 and refused.json()["reason"]
    assert 0 < int(refused.headers["retry-after"]) <= 3600
    assert exchange(service.socket_path, request("GET")).status == 302  # GET is not limited
    assert mailboxes(config) == []
    log = service.log_text()
    assert log.count("rate limit reached") == 1, log


def test_sigterm_stops_it_fast_and_the_socket_keeps_queued_clients(served):
    service, _config = served
    assert exchange(service.socket_path, request("POST")).status == 200
    started = time.monotonic()
    assert service.stop() == 0
    assert time.monotonic() - started < 3
    with unix_connect(service.socket_path) as sock:  # queued while no process runs
        sock.sendall(request("GET"))
        service.start()
        assert parse_answer(read_all(sock)).status == 302


def test_the_socket_is_as_the_unit_says(served):
    service, _config = served
    info = service.socket_path.stat()
    assert info.st_mode & 0o777 == 0o660
    assert grp.getgrgid(info.st_gid).gr_name == "www-data"
