"""The relay's static web site, generated from the config: `site_files(config)`.

Home page (what the relay is, its limits, the account QR code as inline SVG and as a link),
privacy policy, info page, style sheet, the MTA-STS policy and the mail autoconfig file.
The page texts are templates in chatmail_services/templates/www/; values are HTML-escaped.
"""

from __future__ import annotations

import html
import io
import os
from pathlib import Path

import segno
from chatmail_services.dnszone.mtasts import config_policy_text

from chatmail_services.config import Config
from chatmail_services.mailconfig import operator_contact
from chatmail_services.templating import render_template

from .newaccount import account_link

PAGES = ("index.html", "privacy.html", "info.html")
STYLE = "style.css"
MTA_STS = ".well-known/mta-sts.txt"
AUTOCONFIG = ("mail/config-v1.1.xml", ".well-known/autoconfig/mail/config-v1.1.xml")


def human_size(size: int) -> str:
    """Bytes as people read them: `500 MiB`, `30 MiB`, `195.3 KiB`."""
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor:
            value = size / factor
            text = f"{value:.0f}" if value == int(value) else f"{value:.1f}"
            return f"{text} {unit}"
    return f"{size} bytes"


def qr_svg(text: str) -> str:
    """`text` as a QR code in inline SVG (no size: CSS scales it), for screen readers too."""
    buffer = io.BytesIO()
    segno.make(text, error="m", micro=False).save(
        buffer,
        kind="svg",
        scale=1,
        border=4,
        xmldecl=False,
        svgns=True,
        omitsize=True,
        title=f"QR code: {text}",
        svgclass=None,
        lineclass=None,
        dark="#000",
        light="#fff",
    )
    svg = buffer.getvalue().decode("utf-8")
    return svg.replace("<svg ", '<svg role="img" aria-label="QR code for a new account" ', 1)


def page_values(config: Config) -> dict[str, str]:
    """The HTML-escaped values the page templates use (the QR SVG is markup already)."""
    domain = config.chatmail.mail_domain
    link = account_link(domain)
    values = {
        "domain": domain,
        "account_link": link,
        "contact": operator_contact(config),
        "delete_mails_after": config.expire.delete_mails_after,
        "delete_large_after": config.expire.delete_large_after,
        "large_message_size": human_size(config.expire.large_message_size),
        "delete_inactive_users_after": config.expire.delete_inactive_users_after,
        "max_mailbox_size": human_size(config.chatmail.max_mailbox_size),
        "max_message_size": human_size(config.chatmail.max_message_size),
        "max_recipients": config.chatmail.max_recipients,
        "username_length": config.auth.username_max_length,
        "token_max_age_days": config.metadata.token_max_age_days,
    }
    escaped = {name: html.escape(str(value)) for name, value in values.items()}
    escaped["qr_svg"] = qr_svg(link)
    return escaped


def site_files(config: Config) -> dict[str, bytes]:
    """Every file of the site: {path relative to the web root: content}."""
    values = page_values(config)
    files = {page: render_template(f"www/{page}", values).encode() for page in PAGES}
    files[STYLE] = render_template(f"www/{STYLE}", {}).encode()
    files[MTA_STS] = config_policy_text(config).encode()
    autoconfig = render_template("www/config-v1.1.xml", {"domain": values["domain"]}).encode()
    for path in AUTOCONFIG:
        files[path] = autoconfig
    return files


def write_site(config: Config, root: Path) -> list[Path]:
    """Write the site under `root` (mode 0644 files, 0755 directories), each file replaced
    atomically; return the paths written."""
    written = []
    for relative, content in sorted(site_files(config).items()):
        path = root / relative
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(content)
        tmp.chmod(0o644)
        os.replace(tmp, path)
        written.append(path)
    return written
