"""Port 443's stream (chatmail-stream.conf): its production rendering, and the web face through
it (HTTPS with any ALPN but imap and smtp reaches the pages; imap and smtp never do; no log
names a client). The real IMAP and SMTP greetings through it: tests/e2e/test_port443.py."""

from __future__ import annotations

import contextlib
import re
import socket
import ssl

import pytest
from chatmail_services.web.nginxstream import TEMPLATE, StreamPorts, render_stream, stream_values
from hypothesis import given, settings
from hypothesis import strategies as st
from web.conftest import DOMAIN, WEB_ADDRESS

from chatmail_services.templating import PLACEHOLDER, template_text


def test_production_values():
    values = stream_values(StreamPorts())
    assert values["listen_stream"].split("\n") == [
        "        listen 0.0.0.0:443;",
        "        listen [::]:443;",
    ]
    assert values["https_backend"] == "127.0.0.1:8443"
    assert (values["imaps_hop"], values["imaps_target"]) == ("127.0.0.1:8993", "127.0.0.1:993")
    assert (values["smtps_hop"], values["smtps_target"]) == ("127.0.0.1:8465", "127.0.0.1:465")
    assert set(PLACEHOLDER.findall(template_text(TEMPLATE))) == set(values)


def test_stream_routes_by_alpn_and_logs_no_client():
    text = render_stream(StreamPorts())
    assert "ssl_preread on;" in text and "ssl_certificate" not in text  # no TLS in nginx
    routes = re.findall(r'^\s*"?(\S+?)"? (\S+);$', text[text.index("map ") :], re.M)[:3]
    assert routes == [
        ("~(^|,)smtp(,|$)", "127.0.0.1:8465"),
        ("~(^|,)imap(,|$)", "127.0.0.1:8993"),
        ("default", "127.0.0.1:8443"),
    ]
    assert "access_log" not in text and "log_format" not in text and "remote_addr" not in text
    assert re.findall(r"^\s*error_log \S+ (\S+);", text, re.M) == ["emerg"]


@pytest.mark.parametrize("alpn", [None, ["http/1.1"], ["h2", "http/1.1"]])
def test_https_through_the_stream_with_any_other_alpn(front, alpn):
    context = ssl._create_unverified_context()
    if alpn:
        context.set_alpn_protocols(alpn)
    raw = socket.create_connection((WEB_ADDRESS, front.nginx.https_port), timeout=10)
    with context.wrap_socket(raw, server_hostname=DOMAIN) as sock:
        sock.sendall(f"GET / HTTP/1.1\r\nHost: {DOMAIN}\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert b"DCACCOUNT:" in answer


def test_names_that_only_contain_imap_or_smtp_go_to_the_https_server(front):
    """`imaps`, `xsmtp`: not the protocols themselves; nginx's HTTPS server, which speaks
    neither, refuses them in the handshake (Postfix and Dovecot would pick no ALPN and go on)."""
    context = ssl._create_unverified_context()
    context.set_alpn_protocols(["imaps", "xsmtp"])
    raw = socket.create_connection((WEB_ADDRESS, front.nginx.https_port), timeout=10)
    with pytest.raises(ssl.SSLError, match=r"NO_APPLICATION_PROTOCOL|no application protocol"):
        context.wrap_socket(raw, server_hostname=DOMAIN)
    raw.close()


@pytest.mark.parametrize("alpn", ["imap", "smtp"])
def test_imap_and_smtp_never_reach_the_web_server(front, alpn):
    """The web face alone: nothing listens where IMAP and SMTP lead, so nginx closes the
    connection instead of answering with its HTTPS server's certificate."""
    context = ssl._create_unverified_context()
    context.set_alpn_protocols([alpn])
    raw = socket.create_connection((WEB_ADDRESS, front.nginx.https_port), timeout=10)
    with (
        pytest.raises((ssl.SSLError, ConnectionError, OSError)),
        context.wrap_socket(raw, server_hostname=DOMAIN),
    ):
        pass
    raw.close()


def test_stream_errors_name_no_client(front):
    # IMAP to a port where nothing listens: nginx's connect() error names the client at level
    # error, which the stream does not log
    context = ssl._create_unverified_context()
    context.set_alpn_protocols(["imap"])
    for _ in range(3):
        raw = socket.create_connection((WEB_ADDRESS, front.nginx.https_port), timeout=10)
        with contextlib.suppress(ssl.SSLError, OSError):
            context.wrap_socket(raw, server_hostname=DOMAIN).close()
        raw.close()
    assert front.request("GET", "/")[0] == 200  # nginx has written what it was to write
    for path in front.nginx.log_files():
        text = path.read_text(errors="replace")
        assert "client:" not in text and WEB_ADDRESS not in text, f"{path}: {text[-2000:]}"


ALPN_NAMES = st.one_of(
    st.sampled_from(["imap", "smtp", "h2", "http/1.1", "imaps", "xsmtp", "IMAP"]),
    st.text(st.sampled_from("abcimpstx/.1-,"), min_size=1, max_size=8),
)


def landing(front, names: list[str]) -> str:
    """Where nginx's stream takes a ClientHello offering `names`: "mail" when the connection is
    closed before any TLS answer (this web face has nothing behind the IMAP and SMTP routes),
    "https" when nginx's HTTPS server answers (a handshake, or its no-application-protocol
    alert for names it does not speak)."""
    context = ssl._create_unverified_context()
    if names:
        context.set_alpn_protocols(names)
    raw = socket.create_connection((WEB_ADDRESS, front.nginx.https_port), timeout=10)
    try:
        context.wrap_socket(raw, server_hostname=DOMAIN).close()
    except (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionError):
        return "mail"
    except ssl.SSLError as exc:
        assert "NO_APPLICATION_PROTOCOL" in str(exc) or "no application protocol" in str(exc)
        return "https"
    finally:
        raw.close()
    return "https"


@settings(max_examples=60, deadline=None)
@given(names=st.lists(ALPN_NAMES, max_size=4))
def test_only_an_alpn_entry_imap_or_smtp_leaves_the_web_server(front, names):
    """nginx sees the offered names joined by commas ($ssl_preread_alpn_protocols): an entry
    that is exactly `imap` or `smtp` there goes to the mail servers, anything else to HTTPS."""
    entries = ",".join(names).split(",")
    expected = "mail" if {"imap", "smtp"} & set(entries) else "https"
    assert landing(front, names) == expected, names
