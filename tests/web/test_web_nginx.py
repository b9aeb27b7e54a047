"""The real nginx, from the production template, in front of chatmail-web over its UNIX
socket: pages, /new, redirects, the helper host names, errors as JSON; no access log and no
client address in any log."""

from __future__ import annotations

import json
import socket
import ssl
import time
import urllib.parse
from pathlib import Path

from chatmail_services.dnszone.mtasts import config_policy_text
from harness.web import web_service
from web.conftest import DOMAIN, WEB_ADDRESS

SECURITY_HEADERS = (
    "strict-transport-security",
    "content-security-policy",
    "x-content-type-options",
    "referrer-policy",
    "x-frame-options",
)


def mailboxes(front) -> list[Path]:
    return list(Path(front.config.chatmail.mailboxes_dir).iterdir())


def test_home_page_with_security_headers(front):
    status, headers, body = front.request("GET", "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b"<svg " in body and b"DCACCOUNT:https://chat.example/new" in body
    for name in SECURITY_HEADERS:
        assert name in headers, name
    assert "script-src" not in headers["content-security-policy"]  # none runs
    assert headers["server"] == "nginx"  # no version
    for page in ("/privacy.html", "/info.html", "/style.css"):
        assert front.request("GET", page)[0] == 200, page
    assert front.request("GET", "/nothing-here")[0] == 404


def test_new_through_nginx(front):
    status, headers, body = front.request("POST", "/new", b"")
    assert status == 200 and headers["content-type"] == "application/json"
    answer = json.loads(body)
    assert answer["email"].endswith(f"@{DOMAIN}")
    url = urllib.parse.urlsplit(answer["dclogin_url"])
    params = dict(urllib.parse.parse_qsl(url.query))
    assert url.scheme == "dclogin" and params["ic"] == "3" and params["ih"] == WEB_ADDRESS
    assert params["p"] == answer["password"]
    status, headers, _ = front.request("GET", "/new")
    assert (status, headers["location"]) == (302, f"dcaccount:https://{DOMAIN}/new")
    status, headers, body = front.request("PUT", "/new", b"x")
    assert status == 405 and json.loads(body)["reason"]
    assert mailboxes(front) == []


def test_huge_body_is_refused_by_nginx_as_json(front):
    status, headers, body = front.request("POST", "/new", b"x" * (2 << 20))
    assert status == 413 and headers["content-type"] == "application/json"
    assert json.loads(body)["reason"]


def test_port_80_redirects_but_serves_acme_challenges(front):
    challenge = front.nginx.acme_root / ".well-known" / "acme-challenge"
    challenge.mkdir(parents=True, exist_ok=True)
    (challenge / "token123").write_text("token123.thumbprint")
    (challenge / "token123").chmod(0o644)
    for directory in (front.nginx.acme_root, challenge.parent, challenge):
        directory.chmod(0o755)
    with socket.create_connection((WEB_ADDRESS, front.nginx.http_port), timeout=10) as sock:
        sock.sendall(b"GET /privacy.html HTTP/1.0\r\nHost: chat.example\r\n\r\n")
        answer = sock.makefile("rb").read()
    assert answer.startswith(b"HTTP/1.1 301")
    assert b"\r\nLocation: https://chat.example/privacy.html\r\n" in answer
    with socket.create_connection((WEB_ADDRESS, front.nginx.http_port), timeout=10) as sock:
        sock.sendall(
            b"GET /.well-known/acme-challenge/token123 HTTP/1.0\r\nHost: chat.example\r\n\r\n"
        )
        answer = sock.makefile("rb").read()
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"token123.thumbprint")


def test_mta_sts_and_autoconfig_hosts(front):
    status, headers, body = front.request(
        "GET", "/.well-known/mta-sts.txt", host=f"mta-sts.{DOMAIN}"
    )
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert body.decode() == config_policy_text(front.config)
    for host, path in (
        (f"autoconfig.{DOMAIN}", "/mail/config-v1.1.xml"),
        (DOMAIN, "/.well-known/autoconfig/mail/config-v1.1.xml"),
    ):
        status, headers, body = front.request("GET", path, host=host)
        assert status == 200 and b"<clientConfig" in body, (host, path)
        assert "xml" in headers["content-type"]


def test_slow_client_is_cut_off_by_nginx(front):
    context = ssl._create_unverified_context()
    started = time.monotonic()
    raw = socket.create_connection((WEB_ADDRESS, front.nginx.https_port), timeout=30)
    with context.wrap_socket(raw) as sock:
        sock.sendall(b"POST /new HTTP/1.1\r\nHost: chat.example\r\n")
        try:
            data = sock.recv(4096)  # nginx closes after client_header_timeout
        except (ConnectionResetError, ssl.SSLError):
            data = b""
    elapsed = time.monotonic() - started
    assert data == b"" or data.startswith(b"HTTP/1.1 408")
    assert 9 < elapsed < 20
    assert front.request("GET", "/")[0] == 200


def test_service_gone_is_503_json(front):
    front.service.close()  # the socket unit stopped too: nginx cannot connect
    try:
        status, headers, body = front.request("POST", "/new", b"")
        assert status == 503 and headers["content-type"] == "application/json"
        assert json.loads(body)["reason"]
    finally:
        front.service = web_service(
            Path(front.config.path), front.socket, front.logs / "chatmail-web.log"
        ).start()
    assert front.request("POST", "/new", b"")[0] == 200


def test_no_access_log_and_no_address_in_any_log(front):
    # a TLS handshake that fails and a bad request line, which nginx would log with the address
    with socket.create_connection((WEB_ADDRESS, front.nginx.https_port), timeout=10) as sock:
        sock.sendall(b"\x16\x03\x01\x00\x05hello")
        sock.recv(100)
    with socket.create_connection((WEB_ADDRESS, front.nginx.http_port), timeout=10) as sock:
        sock.sendall(b"\x00\x01 nonsense\r\n\r\n")
        sock.recv(100)
    assert front.request("GET", "/")[0] == 200  # nginx has written what it was to write
    logs = front.nginx.log_files()
    assert not [p for p in front.root.rglob("*access*")]
    for path in [*logs, *front.logs.glob("*.log")]:
        text = path.read_text(errors="replace")
        assert WEB_ADDRESS not in text, f"{path}: {text[-2000:]}"
    assert "notice" in (front.nginx.dir / "error.log").read_text()  # the log is really written
