"""Fill the {{name}} placeholders of the production templates in docs/templates/."""

from __future__ import annotations

import re
from pathlib import Path

from chatmail_services.config import Config

from . import TEMPLATES

_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")


def render_text(text: str, values: dict[str, object]) -> str:
    """Replace every {{name}}; a placeholder without a value is an error, not a blank."""
    missing = sorted({name for name in _PLACEHOLDER.findall(text) if name not in values})
    if missing:
        raise KeyError(f"template values missing: {', '.join(missing)}")
    return _PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), text)


def domain_regex(domain: str) -> str:
    """`domain` as a POSIX regular expression matching exactly it (Postfix regexp tables)."""
    return re.sub(r"([.\[\]])", r"\\\1", domain)


def postfix_values(config: Config) -> dict[str, object]:
    """The placeholder values that follow from the chatmail config alone."""
    return {
        "mail_domain": config.chatmail.mail_domain,
        "mail_domain_regex": domain_regex(config.chatmail.mail_domain),
        "max_message_size": config.chatmail.max_message_size,
        "max_recipients": config.chatmail.max_recipients,
    }


def turn_values(config: Config) -> dict[str, object]:
    """coturn's values that follow from the chatmail config: realm and the shared secret."""
    secret = Path(config.metadata.turn_secret_file).read_text().strip()
    return {"mail_domain": config.chatmail.mail_domain, "turn_secret": secret}


POSTFIX_RENDERED = ("main.cf", "master.cf", "recipient_access")
POSTFIX_COPIED = ("submission_header_cleanup", "login_map", "tls_policy")
SYSTEM_CA_FILE = "/etc/ssl/certs/ca-certificates.crt"


def render(template: str, values: dict[str, object], target: Path) -> Path:
    """Render docs/templates/<template> to target."""
    target.write_text(render_text((TEMPLATES / template).read_text(), values))
    return target
