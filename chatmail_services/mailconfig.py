"""The values that fill the mail-stack templates: what follows from the config, and production's
Debian paths and standard ports (the local relay and the tests replace the latter)."""

from __future__ import annotations

import ipaddress
import pwd
import re
from pathlib import Path

from .address import address_domain, ipv4_domain
from .config import Config

POSTFIX_RENDERED = ("main.cf", "master.cf", "recipient_access")
DOVECOT_LMTP = "$virtual_transport"  # main.cf's one LMTP socket of Dovecot
NO_LOCAL_DELIVERY = "error:5.1.1 local delivery is disabled"
POSTFIX_COPIED = ("submission_header_cleanup", "mxdeliv_header_checks", "login_map", "tls_policy")
DOVECOT_RENDERED = ("dovecot.conf", "chatmail-auth.conf.ext")
DOVECOT_COPIED = ("push_notification.lua",)
# Each Dovecot template set (chatmail_services.dovecotversion picks one by the version found):
# (rendered, copied) templates, as paths under templates/; each lands in /etc/dovecot under its
# file name. 2.4's passdb/userdb is the Lua script, which 2.3 and 2.4 share.
DOVECOT_SETS = {
    "dovecot": (
        tuple(f"dovecot/{name}" for name in DOVECOT_RENDERED),
        tuple(f"dovecot/{name}" for name in DOVECOT_COPIED),
    ),
    "dovecot24": (
        ("dovecot24/dovecot.conf", "dovecot/chatmail-auth.lua"),
        ("dovecot/push_notification.lua",),
    ),
}
SYSTEM_CA_FILE = "/etc/ssl/certs/ca-certificates.crt"
# The smtpd that checks mail received over HTTPS ([federation] smtpd_port) listens here only.
MXDELIV_SMTPD_HOST = "127.0.0.1"
# chatmail-mxsend's LMTP socket, relative to the queue directory (chrooted lmtp client)
MXSEND_TRANSPORT = "mxsend:unix:chatmail/mxsend.sock"
# [tls] defaults: certbot's live directory for the mail domain, or the self-signed pair
# chatmail-setup makes
CERTBOT_LIVE = "/etc/letsencrypt/live"
SELF_SIGNED_DIR = "/etc/chatmail/tls"

# coturn on a production relay: every IPv4 address, relay addresses chosen by coturn, no
# log (its session lines name client addresses), Debian's pid file.
PRODUCTION_TURN = {
    "turn_listen": "0.0.0.0",
    "turn_relay_ips": "",
    "turn_log": "/dev/null",
    "turn_pid": "/run/turnserver/turnserver.pid",
}


def domain_regex(domain: str) -> str:
    """`domain` as a POSIX regular expression matching exactly it (Postfix regexp tables)."""
    return re.sub(r"([.\[\]])", r"\\\1", domain)


def operator_contact(config: Config) -> str:
    """The operator's address: [web] operator_contact, else the mail domain's postmaster."""
    domain = address_domain(config.chatmail.mail_domain)
    return config.web.operator_contact or f"postmaster@{domain}"


def server_admin(config: Config) -> str:
    """Dovecot's mail_server_admin (IMAP METADATA /shared/admin): a mailto: URI."""
    return f"mailto:{operator_contact(config)}"


def default_transport(config: Config) -> str:
    """Postfix's transport for remote mail: chatmail-mxsend (HTTPS first, SMTP as the
    fallback) when `[federation] https` is on, else plain `smtp`."""
    return MXSEND_TRANSPORT if config.federation.https else "smtp"


def postfix_values(config: Config) -> dict[str, object]:
    """The placeholder values that follow from the chatmail config alone.

    A relay with a domain name has it as Postfix's virtual domain and no local delivery. A
    relay without one (an IPv4 `mail_domain`) has the address literal `[ip]` as its only local
    destination (Postfix never takes its own address literals for virtual ones), delivered
    to Dovecot like the virtual domain, and its reverse-DNS name as the host name.
    """
    mail_domain = config.chatmail.mail_domain
    domain = address_domain(mail_domain)
    literal = ipv4_domain(mail_domain)
    return {
        "mail_domain": mail_domain,
        "address_domain": domain,
        "mail_domain_regex": domain_regex(domain),
        "hostname": ipaddress.IPv4Address(mail_domain).reverse_pointer if literal else domain,
        "virtual_domains": "" if literal else domain,
        "local_domains": domain if literal else "",
        "local_transport": DOVECOT_LMTP if literal else NO_LOCAL_DELIVERY,
        "max_message_size": config.chatmail.max_message_size,
        "max_recipients": config.chatmail.max_recipients,
        "server_admin": server_admin(config),
        "mxdeliv_listen": f"{MXDELIV_SMTPD_HOST}:{config.federation.smtpd_port}",
        "default_transport": default_transport(config),
    }


def dovecot_values(config: Config) -> dict[str, object]:
    """Dovecot's placeholder values that follow from the config: IMAP COMPRESS ([imap]
    compress). 2.3 needs the `zlib` and `imap_zlib` plugins for it; 2.4 has it built in and
    only leaves it out of CAPABILITY when told."""
    compress = config.imap.compress
    return {
        "zlib_plugin": "zlib" if compress else "",
        "imap_zlib_plugin": "imap_zlib" if compress else "",
        "imap_compress": "yes" if compress else "no",
    }


def turn_values(config: Config) -> dict[str, object]:
    """coturn's values that follow from the chatmail config: realm and the shared secret."""
    secret = Path(config.metadata.turn_secret_file).read_text().strip()
    return {"mail_domain": config.chatmail.mail_domain, "turn_secret": secret}


def tls_paths(config: Config) -> tuple[str, str]:
    """(certificate, key) paths: [tls] cert_file/key_file, else their defaults."""
    tls = config.tls
    base = SELF_SIGNED_DIR if tls.self_signed else f"{CERTBOT_LIVE}/{config.chatmail.mail_domain}"
    return tls.cert_file or f"{base}/fullchain.pem", tls.key_file or f"{base}/privkey.pem"


def production_values(config: Config, cert: str, key: str, mail_user: str) -> dict[str, object]:
    """The placeholder values of a production relay (Debian paths, standard ports)."""
    entry = pwd.getpwnam(mail_user)
    return {
        **postfix_values(config),
        **dovecot_values(config),
        "mailboxes_dir": config.chatmail.mailboxes_dir,
        "tls_ca_file": SYSTEM_CA_FILE,
        "inet_protocols": "all",
        "tls_cert": cert,
        "tls_key": key,
        "config_dir": "/etc/postfix",
        "smtp_listen": "smtp",
        "submission_listen": "submission",
        "smtps_listen": "submissions",
        "chroot": "y",
        "listen": "*, ::",
        "base_dir": "/run/dovecot",
        "state_dir": "/var/lib/dovecot",
        "log_path": "syslog",
        "mail_uid": entry.pw_uid,
        "mail_gid": entry.pw_gid,
        "mail_user": mail_user,
        "auth_dict_conf": "/etc/dovecot/chatmail-auth.conf.ext",
        "auth_lua": "/etc/dovecot/chatmail-auth.lua",
        "auth_socket": "/run/chatmail/auth.sock",
        "metadata_socket": "/run/chatmail/metadata.sock",
        "push_lua": "/etc/dovecot/push_notification.lua",
        "expire_command": "/usr/bin/chatmail-expire",
        "chatmail_config": "/etc/chatmail/chatmail.ini",
        "imap_port": 143,
        "imaps_port": 993,
        "lmtp_socket": "/var/spool/postfix/private/dovecot-lmtp",
        "sasl_socket": "/var/spool/postfix/private/auth",
    }


def production_turn_values(config: Config, secret: str | None = None) -> dict[str, object]:
    """coturn's values on a production relay (`secret`: instead of reading turn_secret_file)."""
    values = (
        {**turn_values(config)}
        if secret is None
        else {
            "mail_domain": config.chatmail.mail_domain,
            "turn_secret": secret,
        }
    )
    return {**values, **PRODUCTION_TURN, "turn_port": config.metadata.turn_port}
