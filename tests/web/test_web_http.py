"""The request parser and the response format of chatmail-web (pure)."""

from __future__ import annotations

import pytest
from chatmail_services.web.http import (
    MAX_BODY,
    MAX_HEAD,
    MAX_HEADERS,
    HttpError,
    Response,
    error_response,
    parse_head,
)
from hypothesis import given
from hypothesis import strategies as st

TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
tokens = st.text(TOKEN_CHARS, min_size=1, max_size=20)
values = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40)
paths = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=60).map(
    lambda tail: "/" + tail
)


def head(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def status_of(data: bytes) -> int:
    with pytest.raises(HttpError) as info:
        parse_head(data)
    return info.value.status


def test_a_post_as_nginx_sends_it():
    request = parse_head(
        head("POST /new HTTP/1.0", "Host: chat.example", "Connection: close", "Content-Length: 0")
    )
    assert (request.method, request.path, request.version) == ("POST", "/new", (1, 0))
    assert request.headers["host"] == "chat.example"
    assert request.content_length() == 0


def test_the_query_is_not_part_of_the_path():
    assert parse_head(head("GET /new?x=1 HTTP/1.1")).path == "/new"


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GET /new HTTP/1.1\r\n", 400),  # no blank line
        (head("GET /new"), 400),
        (head("GET  /new HTTP/1.1"), 400),
        (head("GET new HTTP/1.1"), 400),
        (head("GET http://x/new HTTP/1.1"), 400),
        (head("G(T /new HTTP/1.1"), 400),
        (head("GET /new HTTP/2.0"), 505),
        (head("GET /new HTTP/1.1", "no colon"), 400),
        (head("GET /new HTTP/1.1", "Bad Name: x"), 400),
        (head("GET /new HTTP/1.1", "X: a\x01b"), 400),
        (head("POST /new HTTP/1.1", "Content-Length: -1"), 400),
        (head("POST /new HTTP/1.1", "Content-Length: 1e3"), 400),
        (head("POST /new HTTP/1.1", "Content-Length: \u00b2"), 400),
        (head("POST /new HTTP/1.1", "Content-Length: 1", "Content-Length: 2"), 400),
        (head("POST /new HTTP/1.1", "Transfer-Encoding: chunked"), 501),
        (head("GET /new HTTP/1.1", *[f"X-{i}: y" for i in range(MAX_HEADERS + 1)]), 431),
        (head("GET /new HTTP/1.1", "X: " + "a" * MAX_HEAD), 431),
    ],
)
def test_bad_heads_get_their_status(data, status):
    assert status_of(data) == status


def test_a_body_over_the_limit_is_413_before_it_is_read():
    request = parse_head(head("POST /new HTTP/1.1", f"Content-Length: {10**15}"))
    with pytest.raises(HttpError) as info:
        request.content_length()
    assert info.value.status == 413
    assert parse_head(head("POST /new HTTP/1.1", f"Content-Length: {MAX_BODY}")).content_length()


def test_the_same_content_length_twice_is_one():
    request = parse_head(head("POST /new HTTP/1.1", "Content-Length: 5", "content-length: 5"))
    assert request.content_length() == 5


@given(
    method=tokens,
    path=paths,
    minor=st.sampled_from([0, 1]),
    fields=st.dictionaries(tokens.map(str.lower), values, max_size=10),
)
def test_round_trip(method, path, minor, fields):
    fields.pop("content-length", None)
    fields.pop("transfer-encoding", None)
    lines = [f"{method} {path} HTTP/1.{minor}", *(f"{k}: {v}" for k, v in fields.items())]
    request = parse_head(head(*lines))
    assert (request.method, request.target, request.version) == (method, path, (1, minor))
    assert request.headers == fields


@given(st.binary(max_size=2 * MAX_HEAD))
def test_any_bytes_parse_or_raise_http_error(data):
    try:
        request = parse_head(data)
    except HttpError as exc:
        assert exc.status in (400, 431, 501, 505)
        assert exc.reason
    else:
        assert data.endswith(b"\r\n\r\n") and len(data) <= MAX_HEAD
        assert request.target.startswith("/")


@given(st.binary(max_size=200))
def test_garbage_after_a_good_request_line_is_refused_or_a_field(tail):
    data = b"GET /new HTTP/1.1\r\n" + tail + b"\r\n\r\n"
    try:
        request = parse_head(data)
    except HttpError as exc:
        assert exc.status in (400, 431, 501)
    else:
        assert request.path == "/new"


def test_response_bytes():
    wire = Response(302, b"", "text/plain", {"Location": "dcaccount:https://x/new"}).encode()
    assert wire.startswith(b"HTTP/1.1 302 Found\r\n")
    assert b"\r\nLocation: dcaccount:https://x/new\r\n" in wire
    assert b"\r\nConnection: close\r\n" in wire and wire.endswith(b"\r\n\r\n")


def test_errors_are_json_with_a_reason():
    response = error_response(HttpError(405, "use POST", {"Allow": "POST"}))
    wire = response.encode()
    assert wire.startswith(b"HTTP/1.1 405 Method Not Allowed\r\n")
    assert wire.endswith(b'{"reason":"use POST"}')
    assert b"Content-Type: application/json\r\n" in wire and b"Allow: POST\r\n" in wire
    assert response.encode(head_only=True).endswith(b"\r\n\r\n")
