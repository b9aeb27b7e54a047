"""The Postfix template values that follow from the config: a relay with and without a name."""

from __future__ import annotations

import re

from chatmail_services.config import parse_config
from chatmail_services.mailconfig import postfix_values
from chatmail_services.templating import render_template


def values(mail_domain: str) -> dict[str, object]:
    return postfix_values(parse_config(f"[chatmail]\nmail_domain = {mail_domain}\n"))


def test_a_named_relay_is_a_virtual_domain_without_local_delivery():
    got = values("chat.example")
    assert got["hostname"] == got["address_domain"] == got["virtual_domains"] == "chat.example"
    assert got["local_domains"] == ""
    assert str(got["local_transport"]).startswith("error:")
    assert got["mail_domain_regex"] == r"chat\.example"


def test_a_relay_without_a_name_delivers_its_address_literal_locally():
    got = values("192.0.2.1")
    assert got["address_domain"] == got["local_domains"] == "[192.0.2.1]"
    assert got["virtual_domains"] == ""
    assert got["hostname"] == "1.2.0.192.in-addr.arpa"
    assert got["local_transport"] == "$virtual_transport"
    assert got["mail_domain_regex"] == r"\[192\.0\.2\.1\]"
    access = render_template("postfix/recipient_access", got)
    (rule,) = [line for line in access.splitlines() if line.startswith("!")]
    pattern = re.fullmatch(r"!/(.*)/\s+REJECT.*", rule).group(1)
    assert re.search(pattern, "someone@[192.0.2.1]")
    assert not re.search(pattern, "someone@192.0.2.1")
    assert not re.search(pattern, "someone@[192.0.2.10]")
