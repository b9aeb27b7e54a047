"""The MTA-STS policy (RFC 8461) served at https://mta-sts.<domain>/.well-known/mta-sts.txt."""

from __future__ import annotations

import hashlib

from chatmail_services.config import Config

ID_LENGTH = 16


def policy_text(mail_domain: str, mode: str, max_age: int) -> str:
    """The policy file: version, mode, the one MX (the relay itself) and max_age."""
    return f"version: STSv1\nmode: {mode}\nmx: {mail_domain}\nmax_age: {max_age}\n"


def config_policy_text(config: Config) -> str:
    """The policy file for this relay's `[chatmail] mail_domain` and `[dns]` settings."""
    return policy_text(
        config.chatmail.mail_domain, config.dns.mta_sts_mode, config.dns.mta_sts_max_age
    )


def policy_id(text: str) -> str:
    """The policy's id: a hash prefix (alphanumeric, 1-32 characters), new whenever text changes.

    Senders fetch the policy again only when the id in the `_mta-sts` TXT record changes.
    """
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:ID_LENGTH]


def txt_value(text: str) -> str:
    """The `_mta-sts.<domain>` TXT value announcing the policy `text`."""
    return f"v=STSv1; id={policy_id(text)}"
