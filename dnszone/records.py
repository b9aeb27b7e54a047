"""The records a relay's zone must (required) and should (recommended) have, from its config."""

from __future__ import annotations

from dataclasses import dataclass

from chatmail_services import dkimkey
from chatmail_services.address import ipv4_domain
from chatmail_services.config import Config, ConfigError

from . import mtasts

ACME_CA = "letsencrypt.org"

# (service label, port) of the SRV records (RFC 6186, RFC 8314) pointing mail clients here.
SRV_SERVICES = (("_submission", 587), ("_submissions", 465), ("_imap", 143), ("_imaps", 993))


class ZoneError(ConfigError):
    """The zone cannot be made from this configuration (one line for the admin)."""


@dataclass(frozen=True)
class Record:
    """One DNS record: absolute lower-case `name` (trailing dot), `rtype`, `value`.

    `value` is the record data in zone-file presentation (`10 relay.example.`), except for TXT,
    where it is the text itself: unquoted, its character-strings joined.
    """

    name: str
    rtype: str
    value: str
    required: bool

    def describe(self) -> str:
        return f"{self.name} {self.rtype}"


def fqdn(name: str) -> str:
    """`name` absolute and lower case, with exactly one trailing dot."""
    return name.strip().rstrip(".").lower() + "."


def zone_domain(config: Config) -> str:
    """The zone's apex (fqdn); `ZoneError` for a relay without a domain name, which has none."""
    if ipv4_domain(config.chatmail.mail_domain):
        raise ZoneError(
            f"[chatmail] mail_domain is the IPv4 address {config.chatmail.mail_domain}: "
            "a relay without a domain name has no DNS zone (nothing to publish)"
        )
    return fqdn(config.chatmail.mail_domain)


def required_records(config: Config, dkim_public_b64: str) -> list[Record]:
    """A (and AAAA), MX, MTA-STS, the mta-sts and www names, DKIM: mail fails without them."""
    domain = zone_domain(config)
    if not config.dns.ipv4:
        raise ZoneError("[dns] ipv4 is empty: the A record needs the relay's public IPv4 address")
    records = [Record(domain, "A", config.dns.ipv4, True)]
    if config.dns.ipv6:
        records.append(Record(domain, "AAAA", config.dns.ipv6, True))
    policy = mtasts.config_policy_text(config)
    records += [
        Record(domain, "MX", f"10 {domain}", True),
        Record(f"_mta-sts.{domain}", "TXT", mtasts.txt_value(policy), True),
        Record(f"mta-sts.{domain}", "CNAME", domain, True),
        Record(f"www.{domain}", "CNAME", domain, True),
        dkim_record(config, dkim_public_b64),
    ]
    return records


def dkim_record(config: Config, dkim_public_b64: str) -> Record:
    """The DKIM key record `<selector>._domainkey.<domain>. TXT "v=DKIM1;k=rsa;p=..."`."""
    name = f"{config.dkim.selector}._domainkey.{fqdn(config.chatmail.mail_domain)}"
    return Record(name, "TXT", dkimkey.dkim_record_value(dkim_public_b64), True)


def recommended_records(config: Config) -> list[Record]:
    """SPF, DMARC, CAA and the SRV records for mail clients: better delivery and set-up."""
    domain = zone_domain(config)
    issuer = ACME_CA
    if config.dns.acme_account_uri:
        issuer += f";accounturi={config.dns.acme_account_uri}"
    records = [
        Record(domain, "TXT", "v=spf1 a ~all", False),
        Record(f"_dmarc.{domain}", "TXT", "v=DMARC1;p=reject;adkim=s;aspf=s", False),
        Record(domain, "CAA", f'0 issue "{issuer}"', False),
    ]
    records += [
        Record(f"{service}._tcp.{domain}", "SRV", f"0 1 {port} {domain}", False)
        for service, port in SRV_SERVICES
    ]
    return records


def expected_records(config: Config, dkim_public_b64: str) -> list[Record]:
    """All records of the zone, required ones first."""
    return required_records(config, dkim_public_b64) + recommended_records(config)


def config_records(config: Config) -> list[Record]:
    """All records, with the DKIM public key derived from `[dkim] key_file`.

    Raises `ZoneError` (no IPv4 address, or no domain name) or `dkimkey.DkimKeyError` (no
    usable key).
    """
    return expected_records(config, dkimkey.public_key_b64(config.dkim.key_file))
