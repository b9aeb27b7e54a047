"""chatmail-dns as the admin runs it: the zone, the policy, and --check against real nsd."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from chatmail_services.dnszone import mtasts
from chatmail_services.dnszone.cli import EX_TEMPFAIL
from chatmail_services.dnszone.records import config_records
from chatmail_services.dnszone.zonefile import config_zone_text, parse_zone
from harness import VENV_BIN
from harness.nameserver import NameServer

from chatmail_services.config import EX_CONFIG

CLI = str(VENV_BIN / "chatmail-dns")
# Not the harness's default address, so that other tests' name servers may run meanwhile.
ADDRESS = "127.53.0.3"


def run(config, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, "--config", config.path, *args], capture_output=True, text=True, timeout=120
    )


def test_prints_the_zone_required_then_recommended(zone_config):
    config = zone_config()
    result = run(config)
    assert result.returncode == 0, result.stderr
    assert parse_zone(result.stdout) == config_records(config)
    comments = [line for line in result.stdout.splitlines() if line.startswith(";")]
    assert [c.split(":")[0] for c in comments[1:]] == ["; Required", "; Recommended"]


def test_prints_the_policy(zone_config):
    config = zone_config(dns={"mta_sts_mode": "testing"})
    result = run(config, "--mta-sts-policy")
    assert result.returncode == 0
    assert result.stdout == "version: STSv1\nmode: testing\nmx: chat.example\nmax_age: 2419200\n"
    assert f"id={mtasts.policy_id(result.stdout)}" in run(config).stdout


def test_without_ipv4_one_error_line_and_exit_78(zone_config):
    result = run(zone_config(dns={"ipv4": ""}))
    assert result.returncode == EX_CONFIG
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "chatmail-dns: [dns] ipv4 is empty: the A record needs the relay's public IPv4 address"
    ]


@pytest.mark.parametrize("args", [(), ("--check",), ("--mta-sts-policy",)])
def test_a_relay_without_a_domain_name_has_no_zone(zone_config, args):
    result = run(zone_config(chatmail={"mail_domain": "192.0.2.10"}), *args)
    assert result.returncode == EX_CONFIG
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "chatmail-dns: [chatmail] mail_domain is the IPv4 address 192.0.2.10: a relay without "
        "a domain name has no DNS zone (nothing to publish)"
    ]


def test_without_key_one_error_line_and_exit_78(zone_config, tmp_path):
    result = run(zone_config(dkim={"key_file": tmp_path / "absent"}), "--check")
    assert result.returncode == EX_CONFIG
    assert len(result.stderr.splitlines()) == 1 and "no DKIM key" in result.stderr


def test_a_bad_config_exits_78(zone_config):
    config = zone_config()
    path = Path(config.path)
    path.write_text(path.read_text().replace("ipv4 = 192.0.2.10", "ipv4 = 2001:db8::1"))
    result = run(config)
    assert result.returncode == EX_CONFIG
    assert "not an IPv4 address" in result.stderr


def test_resolver_only_with_check(zone_config):
    result = run(zone_config(), "--resolver", "127.53.0.1")
    assert result.returncode == 2 and "go with --check" in result.stderr


def _lines(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """Output lines of --check by "name TYPE" (each pair appears once)."""
    lines = {" ".join(line.split()[2:4]).rstrip(":"): line for line in result.stdout.splitlines()}
    assert len(lines) == len(result.stdout.splitlines())
    return lines


@pytest.mark.stack
def test_check_against_nsd_serving_exactly_the_printed_zone(zone_config, stack_root):
    config = zone_config()
    zone = run(config).stdout
    assert zone == config_zone_text(config)
    with NameServer(stack_root, ADDRESS, {"chat.example": zone}) as server:
        check = ("--check", "--resolver", f"{server.address}:{server.port}", "--timeout", "2")
        result = run(config, *check)
        assert result.returncode == 0, result.stdout + result.stderr
        statuses = [line.split()[0] for line in result.stdout.splitlines()]
        assert statuses == ["ok"] * len(config_records(config)) == ["ok"] * 14
        # [dkim] resolver is the default server to ask.
        assert run(zone_config(dkim={"resolver": ADDRESS}), "--check").stdout == result.stdout

        changed = zone.replace("MX    10 chat.example.", "MX    20 mx.other.example.")
        kept = [line for line in changed.splitlines() if not re.match("(opendkim|_imaps)[.]", line)]
        assert changed != zone and len(kept) == len(zone.splitlines()) - 2
        server.set_zone("chat.example", "\n".join(kept) + "\n")
        result = run(config, *check)
        assert result.returncode == 1, result.stdout
        lines = _lines(result)
        assert lines["chat.example. MX"] == (
            "different required    chat.example. MX: published 20 mx.other.example.; "
            "expected 10 chat.example."
        )
        dkim = lines["opendkim._domainkey.chat.example. TXT"]
        assert re.fullmatch(r'missing +required +\S+ TXT: expected "v=DKIM1;k=rsa;p=\S+"', dkim)
        assert lines["_imaps._tcp.chat.example. SRV"].startswith("missing   recommended")
        assert sum(line.startswith("ok ") for line in lines.values()) == 11

        # Only a recommended record wrong: a warning line, exit 0.
        server.set_zone("chat.example", zone.replace('"v=spf1 a ~all"', '"v=spf1 mx ~all"'))
        result = run(config, *check)
        assert result.returncode == 0, result.stdout
        assert _lines(result)["chat.example. TXT"].startswith("different recommended")

        server.stop()
        result = run(config, *check[:-1], "0.3")
    assert result.returncode == EX_TEMPFAIL, result.stdout
    lines = result.stdout.splitlines()
    assert len(lines) == 14
    assert all(
        re.match(r"error +(required|recommended) +\S+ \w+: temporary DNS error", line)
        for line in lines
    ), result.stdout
