"""The relay's pages, generated from the config (pure; the browser test renders them)."""

from __future__ import annotations

import html.parser
import re
import xml.etree.ElementTree as ET

from chatmail_services.dnszone.mtasts import config_policy_text
from chatmail_services.web.site import AUTOCONFIG, MTA_STS, human_size, site_files, write_site


class Text(html.parser.HTMLParser):
    """The visible text of a page (scripts would count too: there must be none)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.parts.append(data)

    @property
    def text(self) -> str:
        return re.sub(r"\s+", " ", "".join(self.parts))


def page_text(content: bytes) -> Text:
    parser = Text()
    parser.feed(content.decode())
    return parser


def test_every_file_is_there(make_config):
    files = site_files(make_config())
    assert set(files) == {
        "index.html",
        "privacy.html",
        "info.html",
        "style.css",
        MTA_STS,
        *AUTOCONFIG,
    }


def test_pages_state_the_configured_limits(make_config):
    config = make_config(
        chatmail={"max_mailbox_size": "300M", "max_message_size": "10M"},
        expire={"delete_mails_after": 17, "delete_inactive_users_after": 45},
    )
    files = site_files(config)
    privacy = page_text(files["privacy.html"]).text
    assert "deleted 17 days after it arrived" in privacy
    assert "after 45 days without a login" in privacy
    assert "300 MiB per account" in privacy
    home = page_text(files["index.html"]).text
    assert "17 days, then deleted" in home and "300 MiB" in home and "10 MiB" in home
    assert "DCACCOUNT:https://chat.example/new" in home


def test_operator_contact_on_the_privacy_page_and_escaped(make_config):
    default = site_files(make_config())["privacy.html"].decode()
    assert "mailto:postmaster@chat.example" in default
    config = make_config(web={"operator_contact": "a&b@chat.example"})
    privacy = site_files(config)["privacy.html"].decode()
    assert "mailto:a&amp;b@chat.example" in privacy and "a&b@" not in privacy


def test_no_script_and_a_phone_viewport(make_config):
    for name in ("index.html", "privacy.html", "info.html"):
        content = site_files(make_config())[name]
        parser = page_text(content)
        assert "script" not in parser.tags
        assert b'name="viewport" content="width=device-width' in content
        assert b'<html lang="en">' in content


def test_the_qr_code_is_inline_svg_with_a_label(make_config):
    index = site_files(make_config())["index.html"].decode()
    svg = re.search(r"<svg .*?</svg>", index, re.S)
    assert svg and 'role="img"' in svg[0] and "aria-label=" in svg[0]
    ET.fromstring(svg[0])  # well-formed


def test_mta_sts_is_the_dns_modules_policy(make_config):
    config = make_config(dns={"mta_sts_mode": "testing"})
    assert site_files(config)[MTA_STS].decode() == config_policy_text(config)


def test_autoconfig_lists_the_six_servers(make_config):
    """993/143 and 465/587, and port 443 (SSL) for both: Delta Chat learns 443 only here."""
    files = site_files(make_config())
    assert files[AUTOCONFIG[0]] == files[AUTOCONFIG[1]]
    root = ET.fromstring(files[AUTOCONFIG[0]])
    provider = root.find("emailProvider")
    assert provider is not None and provider.get("id") == "chat.example"
    servers = [
        (s.get("type"), s.findtext("port"), s.findtext("socketType"), s.findtext("username"))
        for s in [*provider.iter("incomingServer"), *provider.iter("outgoingServer")]
    ]
    assert servers == [
        ("imap", "993", "SSL", "%EMAILADDRESS%"),
        ("imap", "143", "STARTTLS", "%EMAILADDRESS%"),
        ("imap", "443", "SSL", "%EMAILADDRESS%"),
        ("smtp", "465", "SSL", "%EMAILADDRESS%"),
        ("smtp", "587", "STARTTLS", "%EMAILADDRESS%"),
        ("smtp", "443", "SSL", "%EMAILADDRESS%"),
    ]
    assert {s.findtext("hostname") for s in provider.iter() if s.find("hostname") is not None}


def test_human_size():
    assert human_size(500 * 1024**2) == "500 MiB"
    assert human_size(31457280) == "30 MiB"
    assert human_size(200000) == "195.3 KiB"
    assert human_size(10) == "10 bytes"


def test_write_site_writes_every_file_readable(make_config, tmp_path):
    config = make_config()
    written = write_site(config, tmp_path / "www")
    files = site_files(config)
    assert sorted(str(p.relative_to(tmp_path / "www")) for p in written) == sorted(files)
    for path in written:
        assert path.read_bytes() == files[str(path.relative_to(tmp_path / "www"))]
        assert path.stat().st_mode & 0o777 == 0o644
    assert not list((tmp_path / "www").rglob(".*.tmp"))
