"""Through the real nginx: `/new` limited per client address (one flooding address does not
lock out the others, and no log names it), and port 80 redirecting only to the configured
domain (no open redirect through the Host header)."""

from __future__ import annotations

import json
import socket

from web.conftest import DOMAIN, WEB_ADDRESS

FLOODER = "127.0.0.5"
OTHER = "127.0.0.6"
FLOOD_CAP = 200  # more than the old global window of 60 per minute


def flood_until_refused(front, source: str) -> tuple[int, int, bytes]:
    """POST /new from `source` until one is refused: (accounts got, status, body)."""
    for granted in range(FLOOD_CAP):
        status, _headers, body = front.request("POST", "/new", b"", source=source)
        if status != 200:
            return granted, status, body
    return FLOOD_CAP, 200, b""


def test_a_flood_from_one_address_leaves_the_others_their_accounts(front):
    granted, status, body = flood_until_refused(front, FLOODER)
    assert status == 429 and json.loads(body)["reason"], (granted, status, body)
    # the flooder stays refused, another address gets its account at once
    assert front.request("POST", "/new", b"", source=FLOODER)[0] == 429
    status, _headers, body = front.request("POST", "/new", b"", source=OTHER)
    assert status == 200 and json.loads(body)["email"].endswith(f"@{DOMAIN}"), body
    # the flooder got what one client may get at once, far below the global ceiling
    web = front.config.web
    assert granted <= web.new_client_burst + 2 < web.new_per_window
    # GET /new gives nothing away and is not counted
    assert front.request("GET", "/new", source=FLOODER)[0] == 302


def test_no_log_names_the_refused_address(front):
    flood_until_refused(front, FLOODER)
    assert front.request("GET", "/")[0] == 200  # nginx has written what it was to write
    for path in [*front.nginx.log_files(), *front.logs.glob("*.log")]:
        text = path.read_text(errors="replace")
        assert FLOODER not in text and WEB_ADDRESS not in text, f"{path}: {text[-2000:]}"
    assert "notice" in (front.nginx.dir / "error.log").read_text()  # the log is really written


def http_get(front, host: str, path: str) -> bytes:
    """A raw HTTP/1.0 request to nginx's port 80 (its whole answer; empty if none)."""
    with socket.create_connection((WEB_ADDRESS, front.nginx.http_port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        try:
            return sock.makefile("rb").read()
        except ConnectionResetError:
            return b""


def location(answer: bytes) -> str | None:
    for line in answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"location":
            return value.strip().decode()
    return None


def test_port_80_redirects_only_to_the_configured_domain(front):
    for host in ("evil.example", "evil.example:80", f"{DOMAIN}.evil.example", WEB_ADDRESS):
        answer = http_get(front, host, "/privacy.html")
        assert b"evil" not in answer and location(answer) is None, (host, answer)
    for host in (DOMAIN, f"www.{DOMAIN}", f"mta-sts.{DOMAIN}", f"{DOMAIN.upper()}:80"):
        answer = http_get(front, host, "/privacy.html?x=1")
        assert answer.startswith(b"HTTP/1.1 301"), (host, answer)
        assert location(answer) == f"https://{DOMAIN}/privacy.html?x=1", (host, answer)


def test_acme_challenges_only_for_the_relay_names(front):
    challenge = front.nginx.acme_root / ".well-known" / "acme-challenge"
    challenge.mkdir(parents=True, exist_ok=True)
    (challenge / "tokenabc").write_text("tokenabc.thumbprint")
    (challenge / "tokenabc").chmod(0o644)
    for directory in (front.nginx.acme_root, challenge.parent, challenge):
        directory.chmod(0o755)
    for host in (DOMAIN, f"www.{DOMAIN}"):
        answer = http_get(front, host, "/.well-known/acme-challenge/tokenabc")
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"tokenabc.thumbprint")
    assert http_get(front, "evil.example", "/.well-known/acme-challenge/tokenabc") == b""
    # a directory without its slash: nginx's own redirect is relative, it names no host
    (challenge / "dir").mkdir(exist_ok=True)
    (challenge / "dir").chmod(0o755)
    assert http_get(front, "evil.example", "/.well-known/acme-challenge/dir") == b""
    answer = http_get(front, DOMAIN, "/.well-known/acme-challenge/dir")
    assert location(answer) == "/.well-known/acme-challenge/dir/", answer


def test_https_redirects_name_no_foreign_host(front):
    (front.web_root / "sub").mkdir(exist_ok=True)
    (front.web_root / "sub" / "index.html").write_text("<p>sub</p>")
    (front.web_root / "sub").chmod(0o755)
    (front.web_root / "sub" / "index.html").chmod(0o644)
    status, headers, _ = front.request("GET", "/sub", host="evil.example")
    assert "evil" not in headers.get("location", ""), (status, headers)
