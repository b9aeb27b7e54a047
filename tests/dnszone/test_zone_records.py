"""The zone a relay publishes: exactly the records of the spec, for its config."""

from __future__ import annotations

import subprocess

import pytest
from chatmail_services.dnszone import mtasts
from chatmail_services.dnszone.records import (
    Record,
    ZoneError,
    config_records,
    expected_records,
)
from chatmail_services.dnszone.zonefile import parse_zone, render_zone
from hypothesis import given
from hypothesis import strategies as st

from chatmail_services.dkimkey import DkimKeyError


def rows(records: list[Record]) -> list[tuple[str, str, str, bool]]:
    return [(r.name, r.rtype, r.value, r.required) for r in records]


def test_the_zone_of_a_relay_is_the_reference_zone(zone_config, public_b64):
    config = zone_config()
    policy = "version: STSv1\nmode: enforce\nmx: chat.example\nmax_age: 2419200\n"
    assert mtasts.config_policy_text(config) == policy
    sts_id = mtasts.policy_id(policy)
    assert rows(config_records(config)) == [
        ("chat.example.", "A", "192.0.2.10", True),
        ("chat.example.", "AAAA", "2001:db8::10", True),
        ("chat.example.", "MX", "10 chat.example.", True),
        ("_mta-sts.chat.example.", "TXT", f"v=STSv1; id={sts_id}", True),
        ("mta-sts.chat.example.", "CNAME", "chat.example.", True),
        ("www.chat.example.", "CNAME", "chat.example.", True),
        (
            "opendkim._domainkey.chat.example.",
            "TXT",
            f"v=DKIM1;k=rsa;p={public_b64};s=email;t=s",
            True,
        ),
        ("chat.example.", "TXT", "v=spf1 a ~all", False),
        ("_dmarc.chat.example.", "TXT", "v=DMARC1;p=reject;adkim=s;aspf=s", False),
        (
            "chat.example.",
            "CAA",
            '0 issue "letsencrypt.org;accounturi=https://acme-v02.api.letsencrypt.org/acme/acct/12345"',
            False,
        ),
        ("_submission._tcp.chat.example.", "SRV", "0 1 587 chat.example.", False),
        ("_submissions._tcp.chat.example.", "SRV", "0 1 465 chat.example.", False),
        ("_imap._tcp.chat.example.", "SRV", "0 1 143 chat.example.", False),
        ("_imaps._tcp.chat.example.", "SRV", "0 1 993 chat.example.", False),
    ]


def test_without_ipv6_no_aaaa_and_without_account_a_plain_caa(zone_config, public_b64):
    records = expected_records(zone_config(dns={"ipv6": "", "acme_account_uri": ""}), public_b64)
    assert "AAAA" not in {r.rtype for r in records}
    assert [r.value for r in records if r.rtype == "CAA"] == ['0 issue "letsencrypt.org"']


def test_settings_reach_the_policy_and_its_id(zone_config):
    config = zone_config(dns={"mta_sts_mode": "testing", "mta_sts_max_age": "86400"})
    policy = mtasts.config_policy_text(config)
    assert "mode: testing\n" in policy and "max_age: 86400\n" in policy
    (sts,) = [r for r in config_records(config) if r.name.startswith("_mta-sts.")]
    assert sts.value == f"v=STSv1; id={mtasts.policy_id(policy)}"
    assert mtasts.policy_id(policy) != mtasts.policy_id(mtasts.config_policy_text(zone_config()))


def test_no_ipv4_is_a_clear_error(zone_config, public_b64):
    with pytest.raises(ZoneError, match=r"\[dns\] ipv4 is empty"):
        expected_records(zone_config(dns={"ipv4": ""}), public_b64)


def test_no_key_is_a_clear_error(zone_config, tmp_path):
    with pytest.raises(DkimKeyError, match="no DKIM key"):
        config_records(zone_config(dkim={"key_file": tmp_path / "absent"}))


def test_the_printed_zone_parses_back_and_nsd_loads_it(zone_config, tmp_path):
    records = config_records(zone_config())
    text = render_zone(records, "title")
    assert parse_zone(text) == records
    (dkim_line,) = [line for line in text.splitlines() if "_domainkey" in line]
    assert dkim_line.count('" "') == 1  # 392 bytes: two strings
    zone = tmp_path / "chat.example.zone"
    zone.write_text(
        "$ORIGIN chat.example.\n$TTL 300\n"
        "@ SOA ns.invalid. h.invalid. 1 3600 600 86400 300\n@ NS ns.invalid.\n" + text
    )
    check = subprocess.run(
        ["nsd-checkzone", "chat.example", str(zone)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr


@given(
    st.sampled_from(["relay.example", "a.b.example", "x-1.example"]),
    st.sampled_from(["enforce", "testing", "none"]),
    st.integers(86400, 31557600),
    st.sampled_from(["relay.example", "a.b.example", "x-1.example"]),
    st.sampled_from(["enforce", "testing", "none"]),
    st.integers(86400, 31557600),
)
def test_policy_id_changes_iff_the_policy_changes(d1, m1, a1, d2, m2, a2):
    p1, p2 = mtasts.policy_text(d1, m1, a1), mtasts.policy_text(d2, m2, a2)
    id1, id2 = mtasts.policy_id(p1), mtasts.policy_id(p2)
    assert (id1 == id2) == (p1 == p2)
    assert id1.isascii() and id1.isalnum() and 1 <= len(id1) <= 32
    assert mtasts.txt_value(p1) == f"v=STSv1; id={id1}"
