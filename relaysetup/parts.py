"""The parts of a relay, each a function of the config and the system as it is.

`PARTS` is the list a run goes through, in order. A part returns its files (rendered from the
package's templates), the checks of the result and the reloads; or None when it does not apply.
A part that cannot be set up raises `SetupError` with one line per problem.
To add a part: write `def x_part(config, ctx) -> Part | None` returning its files, checks and
reloads, and add it to PARTS.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chatmail_services.web import nginxstream
from chatmail_services.web.nginxconf import TEMPLATE, nginx_values
from chatmail_services.web.site import site_files

from chatmail_services.config import Config, describe_char
from chatmail_services.dkimkey import new_private_pem
from chatmail_services.dovecotversion import dovecot_template_dir, parse_dovecot_version
from chatmail_services.mailconfig import DOVECOT_SETS, production_turn_values, tls_paths
from chatmail_services.templating import TEMPLATES, render_text

from . import postfixmerge, tlscert
from .model import Desired, Part

POSTFIX_DIR = "/etc/postfix"
DOVECOT_DIR = "/etc/dovecot"
COTURN_CONF = "/etc/turnserver.conf"
NGINX_CONF = "/etc/nginx/conf.d/chatmail.conf"
# Debian's default site answers every name and address not ours, and logs each visit with the
# visitor's IP address: a relay must not have it.
NGINX_DEFAULT_SITE = "/etc/nginx/sites-enabled/default"
# what a TURN secret may hold (it is one value in turnserver.conf): token_urlsafe's, base64's
TURN_SECRET_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~+/="
)


class SetupError(Exception):
    """The relay cannot be set up as configured; args are the problems, one line each."""


def reload_unit(unit: str) -> tuple[str, ...]:
    """Reload a unit, or start it when it is not running."""
    return ("systemctl", "reload-or-restart", f"{unit}.service")


@dataclass(frozen=True)
class Context:
    """What the parts need besides the config."""

    read_text: Callable[[str], str | None]  # a file of the target system, None if missing
    exists: Callable[[str], bool]
    mail_user: str
    values: dict[str, object]  # the templates' values (mailconfig.production_values)
    dovecot_version: str | None
    templates: Path = TEMPLATES
    system: bool = True  # the real system: require the daemons, run their checks


def template(ctx: Context, name: str) -> str:
    """A template's text: from ctx.templates if it has it, else the package's."""
    own = ctx.templates / name
    return (own if own.exists() else TEMPLATES / name).read_text()


def tls_part(config: Config, ctx: Context) -> Part | None:
    """The certificate: made self-signed when asked and missing, else it must exist."""
    cert, key = tls_paths(config)
    if not config.tls.self_signed:
        missing = [path for path in (cert, key) if not ctx.exists(path)]
        if missing:
            raise SetupError(
                *(
                    f"[tls] {path}: not found; get a certificate with certbot (docs/admin.md) "
                    "or set [tls] self_signed = yes"
                    for path in missing
                )
            )
        return None
    # a new certificate reaches the running services (a no-op when they reload anyway)
    reloads = (reload_unit("postfix"), reload_unit("dovecot"), reload_unit("nginx"))
    if ctx.exists(cert) and ctx.exists(key):
        # made before (or put there by the admin): kept, the key's mode and owner repaired
        kept = Desired(key, b"", 0o600, keep_existing=True, secret=True)
        return Part("tls", files=(kept,), reloads=reloads)
    cert_pem, key_pem = tlscert.self_signed(config.chatmail.mail_domain)
    return Part(
        "tls",
        files=(
            Desired(cert, cert_pem, 0o644),
            Desired(key, key_pem, 0o600, secret=True),
        ),
        reloads=reloads,
    )


def dkim_part(config: Config, ctx: Context) -> Part | None:
    """The DKIM signing key (the package's installation normally made it already)."""
    if not config.dkim.sign:
        return None
    key = Desired(
        config.dkim.key_file,
        b"" if ctx.exists(config.dkim.key_file) else new_private_pem(),
        mode=0o600,
        owner=ctx.mail_user,
        group=ctx.mail_user,
        keep_existing=True,
        secret=True,
    )
    return Part(
        "dkim", files=(key,), reloads=(("systemctl", "try-restart", "chatmail-milter.service"),)
    )


def postfix_part(config: Config, ctx: Context) -> Part:
    """main.cf and master.cf merged (our block), the maps as files."""
    if ctx.system and not ctx.exists("/usr/sbin/postfix"):
        raise SetupError("postfix is not installed: apt-get install postfix")
    files = []
    for name, merge in (
        ("main.cf", postfixmerge.merge_main),
        ("master.cf", postfixmerge.merge_master),
    ):
        ours = render_text(template(ctx, f"postfix/{name}"), ctx.values)
        current = ctx.read_text(f"{POSTFIX_DIR}/{name}") or ""
        try:
            files.append(Desired(f"{POSTFIX_DIR}/{name}", merge(current, ours).encode()))
        except postfixmerge.MergeError as exc:
            raise SetupError(f"{POSTFIX_DIR}/{exc}") from None
    for name in (
        "recipient_access",
        "login_map",
        "submission_header_cleanup",
        "mxdeliv_header_checks",
    ):
        text = render_text(template(ctx, f"postfix/{name}"), ctx.values)
        files.append(Desired(f"{POSTFIX_DIR}/{name}", text.encode()))
    # tls_policy is the admin's list of exceptions: installed once, then left alone
    policy = template(ctx, "postfix/tls_policy").encode()
    files.append(Desired(f"{POSTFIX_DIR}/tls_policy", policy, keep_existing=True))
    return Part(
        "postfix",
        files=tuple(files),
        checks=(("postfix", "check"),) if ctx.system else (),
        reloads=(reload_unit("postfix"),),
    )


def dovecot_part(config: Config, ctx: Context) -> Part:
    """Our dovecot.conf (it reads no conf.d/, so no system users log in), its include files."""
    if ctx.dovecot_version is None:
        if not ctx.system:
            raise SetupError("no Dovecot here to render for: give --dovecot-version")
        raise SetupError("dovecot is not installed: apt-get install dovecot-imapd dovecot-lmtpd")
    try:
        directory = dovecot_template_dir(parse_dovecot_version(ctx.dovecot_version))
    except ValueError as exc:
        raise SetupError(str(exc)) from None
    rendered, copied = DOVECOT_SETS[directory]
    files = tuple(
        Desired(
            f"{DOVECOT_DIR}/{Path(name).name}",
            (
                render_text(template(ctx, name), ctx.values)
                if name in rendered
                else template(ctx, name)
            ).encode(),
        )
        for name in (*rendered, *copied)
    )
    return Part(
        "dovecot",
        files=files,
        checks=(("doveconf", "-n"),) if ctx.system else (),
        reloads=(reload_unit("dovecot"),),
    )


def coturn_part(config: Config, ctx: Context) -> Part | None:
    """coturn for calls, when [metadata] turn_host is set; the shared secret made if missing."""
    if not config.metadata.turn_host:
        return None
    if ctx.system and not ctx.exists("/usr/bin/turnserver"):
        raise SetupError(
            "[metadata] turn_host is set but coturn is not installed: apt-get install coturn"
        )
    secret_file = config.metadata.turn_secret_file
    existing = ctx.read_text(secret_file)
    secret = existing.strip() if existing is not None else secrets.token_urlsafe(32)
    bad = [char for char in secret if char not in TURN_SECRET_CHARS]
    if bad or not secret:
        what = f"{describe_char(bad[0])} is not allowed in it" if bad else "it is empty"
        raise SetupError(
            f"[metadata] turn_secret_file {secret_file}: {what} (letters, digits and - _ . ~ + "
            f"/ =); remove it and run chatmail-setup again for a new one"
        )
    # kept when it exists (its content only), its mode and owner repaired
    content = f"{secret}\n".encode() if existing is None else b""
    files = [Desired(secret_file, content, 0o640, "root", ctx.mail_user, True, True)]
    conf = render_text(
        template(ctx, "coturn/turnserver.conf"), production_turn_values(config, secret)
    )
    files.append(Desired(COTURN_CONF, conf.encode(), 0o640, "root", "turnserver", secret=True))
    return Part(
        "coturn",
        files=tuple(files),
        reloads=(
            ("systemctl", "restart", "coturn.service"),
            ("systemctl", "try-restart", "chatmail-metadata.service"),
        ),
    )


def nginx_part(config: Config, ctx: Context) -> Part:
    """nginx's server for the relay's names (pages, `/new`, MTA-STS, autoconfig), port 443's
    stream (IMAP and SMTP by ALPN beside HTTPS) and the pages themselves (chatmail-web's
    site, generated from the config) in `[web] root`."""
    if ctx.system and not ctx.exists("/usr/sbin/nginx"):
        raise SetupError("nginx is not installed: apt-get install nginx")
    if ctx.exists(NGINX_DEFAULT_SITE):
        raise SetupError(
            f"{NGINX_DEFAULT_SITE}: Debian's default site logs every visitor's IP address; "
            f"remove it (rm {NGINX_DEFAULT_SITE}) and run chatmail-setup again"
        )
    if ctx.system and not ctx.exists(nginxstream.STREAM_MODULE):
        raise SetupError(
            "nginx's stream module is not installed (IMAP and SMTP on port 443): "
            "apt-get install libnginx-mod-stream"
        )
    cert, key = tls_paths(config)
    conf = render_text(template(ctx, TEMPLATE), nginx_values(config, tls_cert=cert, tls_key=key))
    stream = render_text(
        template(ctx, nginxstream.TEMPLATE),
        nginxstream.stream_values(nginxstream.PRODUCTION_STREAM),
    )
    pages = (
        Desired(f"{config.web.root}/{relative}", content)
        for relative, content in sorted(site_files(config).items())
    )
    return Part(
        "nginx",
        files=(
            Desired(NGINX_CONF, conf.encode()),
            Desired(nginxstream.PRODUCTION_FILE, stream.encode()),
            *pages,
        ),
        checks=(("nginx", "-t", "-q"),) if ctx.system else (),
        reloads=(reload_unit("nginx"),),
    )


PARTS: tuple[Callable[[Config, Context], Part | None], ...] = (
    tls_part,
    dkim_part,
    postfix_part,
    dovecot_part,
    coturn_part,
    nginx_part,
)


def build_parts(config: Config, ctx: Context) -> list[Part]:
    """Every part that applies; all parts' problems together in one SetupError."""
    parts, problems = [], []
    for make in PARTS:
        try:
            part = make(config, ctx)
        except SetupError as exc:
            problems.extend(exc.args)
            continue
        if part is not None:
            parts.append(part)
    if problems:
        raise SetupError(*problems)
    return parts
