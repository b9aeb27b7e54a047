"""The one account-name rule (chatmail_services.address) and the address domain of a relay."""

from __future__ import annotations

import re

import pytest
from chatmail_services.expire.scan import TOMBSTONE_PREFIX
from hypothesis import given
from hypothesis import strategies as st

from chatmail_services.address import (
    LOCAL_PART_CHARS,
    MAX_LOCAL_PART,
    NON_ACCOUNT_PREFIX,
    account_address,
    address_domain,
    ipv4_domain,
    is_local_part,
    local_part,
)

DOMAIN = "chat.example"
IP = "192.0.2.1"
DOT_ATOM = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")


@given(st.text(alphabet=LOCAL_PART_CHARS + "A.-@/[]\0é", max_size=70))
def test_every_accepted_local_part_is_a_dot_atom_of_the_alphabet(local):
    accepted = local_part(DOMAIN, f"{local}@{DOMAIN}")
    if accepted is None:
        return
    assert accepted == local.lower()
    assert DOT_ATOM.fullmatch(accepted)
    assert set(accepted) <= set(LOCAL_PART_CHARS)
    assert not accepted.startswith((".", "-", NON_ACCOUNT_PREFIX))
    assert not accepted.endswith(".") and ".." not in accepted
    assert 1 <= len(accepted) <= MAX_LOCAL_PART


@given(st.text(alphabet="abc09_-", min_size=1, max_size=20), st.lists(st.text("x-_9", min_size=1)))
def test_every_dot_atom_not_starting_with_a_dash_is_accepted(first, atoms):
    local = ".".join([first, *atoms])
    expected = len(local) <= MAX_LOCAL_PART and not local.startswith("-")
    assert is_local_part(local) is expected
    assert (local_part(DOMAIN, f"{local}@{DOMAIN}") == local) is expected


@pytest.mark.parametrize(
    "local",
    ["qadot002.", "qa..dot03", "-x", "-abcdefgh", ".hidden", ".", "..", "", "a" * 65, "a/b", "é"],
)
def test_names_other_mail_servers_or_admin_tools_cannot_take_are_refused(local):
    assert not is_local_part(local)
    assert local_part(DOMAIN, f"{local}@{DOMAIN}") is None


def test_tombstones_can_never_be_account_names():
    assert TOMBSTONE_PREFIX.startswith(NON_ACCOUNT_PREFIX)
    assert local_part(DOMAIN, f"{TOMBSTONE_PREFIX}abcdefghi@{DOMAIN}") is None


@pytest.mark.parametrize(
    ("mail_domain", "expected"),
    [(DOMAIN, DOMAIN), (IP, f"[{IP}]"), ("127.0.0.1", "[127.0.0.1]"), ("1.example", "1.example")],
)
def test_address_domain_is_the_name_or_an_address_literal(mail_domain, expected):
    assert address_domain(mail_domain) == expected
    assert ipv4_domain(mail_domain) is (expected != mail_domain)
    assert account_address(mail_domain, "abcdefghi") == f"abcdefghi@{expected}"


@given(st.ip_addresses(v=4), st.sampled_from([True, False]))
def test_ip_literal_addresses_are_accounts_exactly_of_an_ip_relay(ip, literal):
    user = f"abcdefghi@[{ip}]" if literal else f"abcdefghi@{ip}"
    assert (local_part(str(ip), user) == "abcdefghi") is literal
    assert local_part(DOMAIN, user) is None
    assert local_part(str(ip), f"abcdefghi@{DOMAIN}") is None
    assert local_part(str(ip), f"ABCDEFGHI@[{ip}]") == "abcdefghi"
