"""The one configuration file, `/etc/chatmail/chatmail.ini`, read once at start.

`[chatmail]` holds what all services share; `[auth]`, `[milter]`, `[expire]`, `[metadata]` and
`[web]` hold one service each, `[federation]` mail between relays over HTTPS; the setup command
(chatmail-setup) reads `[tls]`. Every option has a default (see `docs/configuration.md`). A
bad value raises `ConfigError` with one line naming the file, the key and what is wrong; the
command-line front ends turn it into exit status 78 (EX_CONFIG). Unknown keys become warnings.
"""

from __future__ import annotations

import configparser
import dataclasses
import ipaddress
import os
import re
import socket
import string
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .address import MAX_LOCAL_PART

DEFAULT_CONFIG_PATH = "/etc/chatmail/chatmail.ini"
CONFIG_ENV = "CHATMAIL_CONFIG"
EX_CONFIG = 78

_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kKmMgGtT]?)[bB]?\s*$")
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_DOMAIN_RE = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)


class ConfigError(Exception):
    """A configuration value is unusable; the message is one line for the admin."""


class SettingsError(ConfigError):
    """The configuration parses but cannot be served: it names a user, file or key that is
    missing or unusable (one line for the admin)."""


# -- characters: none of a value may be a control character; each kind allows its own set --

# Values are rendered into Postfix, Dovecot, nginx and coturn files, the web pages and Lua:
# each kind allows only characters that mean nothing in any of them (docs/configuration.md).
PATH_CHARS = frozenset(string.ascii_letters + string.digits + "/._+@-")
WORD_CHARS = frozenset(string.ascii_letters + string.digits + "_.-")
LOCAL_PART_CHARS = frozenset(string.ascii_letters + string.digits + "._+&-")
HOST_CHARS = frozenset(string.ascii_lowercase + string.digits + ".-")
URL_CHARS = frozenset(string.ascii_letters + string.digits + "-._~:/?[]@!&+,=")
_CHAR_NAMES = {"\n": "line break", "\r": "carriage return", "\t": "tab", "\0": "NUL byte"}


def describe_char(char: str) -> str:
    """A character as an error names it: `'#'`, or `line break (U+000A)` when invisible."""
    if char.isprintable():
        return repr(char)
    kind = "control character" if unicodedata.category(char) == "Cc" else "invisible character"
    return f"{_CHAR_NAMES.get(char, kind)} (U+{ord(char):04X})"


def refuse_control(text: str) -> None:
    """ValueError naming the first control (or other non-printing) character of a value.

    A line break comes from configparser, which joins an indented next line to the value."""
    for index, char in enumerate(text):
        if not char.isprintable() and char != " ":
            hint = " (an indented line continues the value above it)" if char == "\n" else ""
            raise ValueError(f"{describe_char(char)} at position {index + 1} is not allowed{hint}")


def _only(value: str, allowed: frozenset[str], what: str) -> str:
    """`value` if each of its characters is in `allowed`, else ValueError naming the first
    one that is not (`what`: the kind and its characters, for the message)."""
    for char in value:
        if char not in allowed:
            raise ValueError(f"{describe_char(char)} is not allowed in {what}")
    return value


# -- value parsers: each takes the raw string and returns the value or raises ValueError --


def parse_size(text: str) -> int:
    """Parse a byte size: a number with an optional K/M/G/T suffix (powers of 1024)."""
    match = _SIZE_RE.match(text)
    if not match:
        raise ValueError(f"not a size (a number with optional K, M, G or T suffix): {text!r}")
    number, unit = match.groups()
    return int(number) * _SIZE_UNITS[unit.lower()]


def _int_range(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise ValueError(f"not a whole number: {text!r}") from None
        if lo is not None and value < lo:
            raise ValueError(f"must be at least {lo}, got {value}")
        if hi is not None and value > hi:
            raise ValueError(f"must be at most {hi}, got {value}")
        return value

    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise ValueError(f"must be a positive number, got {text.strip()!r}")
    return value


def _size(text: str) -> int:
    return parse_size(text)


def _positive_size(text: str) -> int:
    value = parse_size(text)
    if value <= 0:
        raise ValueError("must be larger than 0")
    return value


def _abs_path(text: str) -> str:
    """An absolute path of letters, digits and `/ . _ + @ -` (normalized)."""
    value = text.strip()
    if not value.startswith("/"):
        raise ValueError(f"must be an absolute path, got {value!r}")
    _only(value, PATH_CHARS, "a path (letters, digits and / . _ + @ -)")
    return os.path.normpath(value)


def _optional_abs_path(text: str) -> str:
    return _abs_path(text) if text.strip() else ""


def _is_host_name(value: str) -> bool:
    """A DNS host name: LDH labels, the last one not all digits (that would be an IP)."""
    return bool(_DOMAIN_RE.match(value)) and not value.rpartition(".")[2].isdigit()


def _name_or_ipv4(value: str, no_ipv6: str, neither: str) -> str:
    """`value` (stripped, lower case) if a host name, else as a canonical IPv4 address.

    ValueError `no_ipv6` for an IPv6 address, `neither` for anything else."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        if not _is_host_name(value):
            bad = [char for char in value if char not in HOST_CHARS]
            because = f" ({describe_char(bad[0])} is not allowed)" if bad else ""
            raise ValueError(f"{neither}: {value!r}{because}") from None
        return value
    if address.version == 6:
        raise ValueError(f"{no_ipv6}, use a name: {value!r}")
    return str(address)


def _mail_domain(text: str) -> str:
    """A domain name, or an IPv4 address for a relay without one (addresses `user@[ip]`)."""
    return _name_or_ipv4(
        text.strip().lower(),
        "an IPv6 address cannot be the mail domain",
        "not a valid domain name or IPv4 address",
    )


def _word(text: str) -> str:
    """A user name (letters, digits and `_ . -`), or empty."""
    return _only(text.strip(), WORD_CHARS, "a user name (letters, digits and _ . -)")


def _log_level(text: str) -> str:
    value = text.strip().lower()
    if value not in ("debug", "info", "warning", "error"):
        raise ValueError(f"must be one of debug, info, warning, error; got {value!r}")
    return value


def _percent(text: str) -> int:
    return _int_range(1, 100)(text)


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("yes", "true", "on", "1"):
        return True
    if value in ("no", "false", "off", "0"):
        return False
    raise ValueError(f"must be yes or no, got {text.strip()!r}")


def _selector(text: str) -> str:
    value = text.strip().lower()
    if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", value):
        raise ValueError(f"not a DNS label (letters, digits, '-'): {text.strip()!r}")
    return value


def _nameservers(text: str) -> tuple[tuple[str, int], ...]:
    """Comma-separated `IP`, `IP:PORT` or `[IPv6]:PORT`; empty means the system's resolver."""
    servers = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        host, port = item, "53"
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            if rest:
                if not rest.startswith(":"):
                    raise ValueError(f"not [IPv6]:PORT: {item!r}")
                port = rest[1:]
        elif item.count(":") == 1:
            host, port = item.split(":")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"not an IP address: {host!r}") from None
        servers.append((host, _int_range(1, 65535)(port)))
    return tuple(servers)


def _optional_ip(version: int) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip()
        if not value:
            return ""
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"not an IPv{version} address: {value!r}") from None
        if address.version != version or getattr(address, "scope_id", None):
            raise ValueError(f"not an IPv{version} address: {value!r}")
        return str(address)

    return parse


def _mta_sts_mode(text: str) -> str:
    value = text.strip().lower()
    if value not in ("enforce", "testing", "none"):
        raise ValueError(f"must be enforce, testing or none; got {value!r}")
    return value


def _url(*schemes: str) -> Callable[[str], str]:
    """A parser of URLs with one of `schemes`, a host and URL characters only; or empty."""
    wanted = " or ".join(f"{scheme}://" for scheme in schemes)

    def parse(text: str) -> str:
        value = text.strip()
        if not value:
            return ""
        scheme, sep, rest = value.partition("://")
        if not sep or scheme.lower() not in schemes or not rest or rest[0] in "/?":
            raise ValueError(f"must be an {wanted} URL with a host: {value!r}")
        return _only(value, URL_CHARS, "a URL (letters, digits and - . _ ~ : / ? [ ] @ ! & + , =)")

    return parse


_optional_url = _url("http", "https")
_optional_https_url = _url("https")


def _optional_host(text: str) -> str:
    """A host name or IPv4 address, or empty. No IPv6 literal: the value goes into the
    colon-separated `host:port:expiry:password` of the TURN metadata key."""
    value = text.strip().lower()
    if not value:
        return ""
    return _name_or_ipv4(
        value, "an IPv6 address cannot be told to clients", "not a host name or IP address"
    )


def _default_domain() -> str:
    name = socket.getfqdn().strip().lower()
    return name if _is_host_name(name) else "localhost"


# -- the schema --


def _opt(parse: Callable[[str], Any], default: str | Callable[[], str], doc: str) -> Any:
    """A dataclass field carrying the option's parser, raw default and documentation."""
    return field(default=None, metadata={"parse": parse, "default": default, "doc": doc})


@dataclass(frozen=True)
class ChatmailSection:
    """`[chatmail]`: what all services share."""

    mail_domain: str = _opt(
        _mail_domain,
        _default_domain,
        "the relay's mail domain (default: this host's FQDN); an IPv4 address for a relay "
        "without a domain name (addresses are then user@[192.0.2.1])",
    )
    mailboxes_dir: str = _opt(
        _abs_path, "/var/lib/chatmail/mailboxes", "root of the per-account Maildir homes"
    )
    max_mailbox_size: int = _opt(_positive_size, "500M", "per-account storage limit (quota)")
    max_message_size: int = _opt(_positive_size, "31457280", "largest message accepted, in bytes")
    max_recipients: int = _opt(
        _int_range(1, 100000),
        "1000",
        "recipients per SMTP transaction (Postfix smtpd_recipient_limit; told to clients)",
    )
    log_level: str = _opt(
        _log_level, "info", "debug, info, warning or error; addresses appear only at debug"
    )
    metrics_dir: str = _opt(
        _optional_abs_path,
        "/var/lib/prometheus/node-exporter",
        "directory where each service writes its Prometheus metrics file (the node exporter's "
        "textfile directory; the mail user must be allowed to create files in it; empty: no "
        "metrics)",
    )
    metrics_interval: int = _opt(
        _int_range(1, 3600), "15", "seconds between two writes of a service's metrics file"
    )


@dataclass(frozen=True)
class AuthSection:
    """`[auth]`: the Dovecot auth responder."""

    socket: str = _opt(
        _abs_path, "/run/chatmail/auth.sock", "socket path when not socket-activated"
    )
    username_min_length: int = _opt(
        _int_range(1, MAX_LOCAL_PART), "9", "shortest local part a new account may have"
    )
    username_max_length: int = _opt(
        _int_range(1, MAX_LOCAL_PART), "9", "longest local part a new account may have"
    )
    password_min_length: int = _opt(
        _int_range(1, 256), "9", "shortest password a new account may have"
    )
    nocreate_file: str = _opt(
        _abs_path, "/etc/chatmail/nocreate", "while this file exists, no account is created"
    )
    max_load_1m: float = _opt(
        _positive_float, "5", "no account is created above this 1-minute load"
    )
    min_available_memory: int = _opt(
        _size, "200M", "no account is created with less available memory"
    )
    min_free_disk: int = _opt(
        _size, "1G", "no account is created with less free disk on mailboxes_dir"
    )
    mail_user: str = _opt(
        _word,
        "",
        "user whose uid/gid Dovecot uses for mail (default: the user the responder runs as)",
    )


@dataclass(frozen=True)
class MilterSection:
    """`[milter]`: the encryption checker."""

    socket: str = _opt(
        _abs_path,
        "/var/spool/postfix/chatmail/milter.sock",
        "socket path when not socket-activated",
    )
    max_user_send_per_minute: int = _opt(_int_range(1), "60", "sustained sending rate per sender")
    max_user_send_burst_size: int = _opt(
        _int_range(1), "10", "messages a sender may send at once above the rate"
    )
    spool_threshold: int = _opt(
        _size, "1M", "message bytes kept in memory before spooling to a temporary file"
    )
    spool_dir: str = _opt(
        _optional_abs_path,
        "",
        "directory for spooled messages (default: the system's temporary directory)",
    )
    timeout: int = _opt(
        _int_range(1, 3600),
        "600",
        "seconds libmilter waits for Postfix before giving up a connection",
    )


@dataclass(frozen=True)
class ExpireSection:
    """`[expire]`: the Maildir reaper."""

    delete_mails_after: int = _opt(_int_range(1), "20", "days after which every message is deleted")
    delete_large_after: int = _opt(
        _int_range(1), "7", "days after which large seen messages are deleted"
    )
    large_message_size: int = _opt(
        _positive_size, "200000", "what counts as a large message, in bytes"
    )
    delete_inactive_users_after: int = _opt(
        _int_range(1), "90", "days without login after which an account is removed"
    )
    quota_trim_start: int = _opt(
        _percent, "75", "percent of max_mailbox_size above which the oldest mail is trimmed"
    )
    quota_trim_target: int = _opt(
        _percent, "70", "percent of max_mailbox_size the trim goes down to"
    )
    quota_trim_min_age_hours: int = _opt(
        _int_range(0), "24", "quota trimming never deletes younger messages"
    )


@dataclass(frozen=True)
class DkimSection:
    """`[dkim]`: DKIM signing of outgoing and verification of incoming mail (in the milter)."""

    selector: str = _opt(_selector, "chatmail", "DNS selector of the signing key")
    key_file: str = _opt(
        _abs_path,
        "/etc/chatmail/dkim/chatmail.private",
        "PEM private key (RSA 2048); created by `chatmail-milter dkim-keygen`",
    )
    sign: bool = _opt(_bool, "yes", "sign outgoing mail, including bounces (yes or no)")
    verify: bool = _opt(
        _bool, "yes", "refuse incoming mail without a valid DKIM signature of its From domain"
    )
    resolver: tuple = _opt(
        _nameservers,
        "",
        "comma-separated DNS servers (IP or IP:PORT) for key lookups (default: the system's)",
    )
    dns_timeout: float = _opt(_positive_float, "5", "seconds one key lookup may take in all")
    key_cache_size: int = _opt(_int_range(0), "2000", "public keys kept in memory (0: none)")
    key_cache_ttl: int = _opt(
        _int_range(0), "3600", "longest time in seconds a public key is kept (at most its TTL)"
    )
    max_signatures: int = _opt(
        _int_range(1, 50), "5", "signatures checked per message at most (aligned ones first)"
    )
    max_key_bits: int = _opt(
        _int_range(1024, 16384), "4096", "larger RSA keys are not used (the signature fails)"
    )


@dataclass(frozen=True)
class DnsSection:
    """`[dns]`: what `chatmail-dns` publishes (the relay's addresses, MTA-STS, CAA)."""

    ipv4: str = _opt(_optional_ip(4), "", "the relay's public IPv4 address (A record)")
    ipv6: str = _opt(_optional_ip(6), "", "the relay's public IPv6 address (AAAA record)")
    mta_sts_mode: str = _opt(_mta_sts_mode, "enforce", "MTA-STS policy mode")
    mta_sts_max_age: int = _opt(
        _int_range(86400, 31557600), "2419200", "MTA-STS policy lifetime in seconds"
    )
    acme_account_uri: str = _opt(
        _optional_https_url,
        "",
        "ACME account URI for the CAA record (empty: CAA without accounturi)",
    )


@dataclass(frozen=True)
class MetadataSection:
    """`[metadata]`: the IMAP METADATA responder (push device tokens, server keys)."""

    socket: str = _opt(
        _abs_path, "/run/chatmail/metadata.sock", "socket path when not socket-activated"
    )
    max_tokens: int = _opt(
        _int_range(1, 1000), "10", "push device tokens kept per account (the oldest go first)"
    )
    token_max_age_days: int = _opt(
        _int_range(1), "90", "days after which a device token not set again is forgotten"
    )
    iroh_relay: str = _opt(
        _optional_url, "", "URL of the iroh relay told to clients (empty: none announced)"
    )
    turn_host: str = _opt(
        _optional_host, "", "host name of the TURN server told to clients (empty: none)"
    )
    turn_port: int = _opt(_int_range(1, 65535), "3478", "port of the TURN server")
    turn_secret_file: str = _opt(
        _abs_path,
        "/etc/chatmail/turn-secret",
        "file holding the secret shared with the TURN server (coturn static-auth-secret)",
    )
    turn_credential_lifetime: int = _opt(
        _int_range(86400, 31536000),
        "432000",
        "seconds a TURN credential stays valid (clients renew 12 h before expiry)",
    )
    app_versions_file: str = _opt(
        _optional_abs_path,
        "/etc/chatmail/appversions.json",
        "JSON file told to clients as appversions; while it does not exist, the list shipped "
        "with the package (empty setting: none)",
    )
    notify_url: str = _opt(
        _optional_https_url,
        "https://notifications.delta.chat/notify",
        "notification service a new message's device tokens are POSTed to (empty: no push)",
    )
    notify_ca_file: str = _opt(
        _optional_abs_path,
        "",
        "CA certificates the notification service is checked against (default: the system's)",
    )
    queue_dir: str = _opt(
        _abs_path,
        "/var/lib/chatmail/notify-queue",
        "pending notifications, one file per device token at most",
    )
    notify_queue_max: int = _opt(
        _int_range(1, 10000000),
        "20000",
        "pending notifications kept at most (one per device token); beyond, new ones are "
        "dropped and counted in the log",
    )
    notify_retry_base: float = _opt(
        _positive_float, "8", "seconds before the first retry; doubled after each failure"
    )
    notify_give_up_after: int = _opt(
        _int_range(1), "18000", "seconds after its newest message a notification is given up"
    )
    notify_concurrency: int = _opt(_int_range(1, 256), "8", "notifications sent at once at most")
    notify_timeout: float = _opt(_positive_float, "30", "seconds one notification POST may take")


@dataclass(frozen=True)
class TlsSection:
    """`[tls]`: the certificate Postfix, Dovecot and nginx present (set up by chatmail-setup)."""

    cert_file: str = _opt(
        _optional_abs_path,
        "",
        "certificate chain, PEM (default: certbot's /etc/letsencrypt/live/<mail_domain>/"
        "fullchain.pem; with self_signed: /etc/chatmail/tls/fullchain.pem)",
    )
    key_file: str = _opt(
        _optional_abs_path,
        "",
        "its private key, PEM (default: certbot's /etc/letsencrypt/live/<mail_domain>/"
        "privkey.pem; with self_signed: /etc/chatmail/tls/privkey.pem)",
    )
    self_signed: bool = _opt(
        _bool,
        "no",
        "the certificate is self-signed: chatmail-setup makes one when none exists (IP-address "
        "relays, tests) and `/new` adds a `dclogin_url` with ic=3 (accept it)",
    )


@dataclass(frozen=True)
class ImapSection:
    """`[imap]`: what Dovecot's IMAP offers clients beyond the relay's fixed setup."""

    compress: bool = _opt(
        _bool,
        "no",
        "offer IMAP COMPRESS=DEFLATE (RFC 4978): less traffic, but Dovecot never hibernates a "
        "compressed connection, so each idle client keeps its own imap process (docs/relay.md)",
    )


def _optional_email(text: str) -> str:
    """An e-mail address: a dot-atom of letters, digits and `. _ + & -`, '@', the mail domain
    kind (a name or IPv4 address); or empty."""
    value = text.strip()
    if not value:
        return ""
    local, at, domain = value.rpartition("@")
    if not at or not local:
        raise ValueError(f"not an e-mail address: {value!r}")
    _only(local, LOCAL_PART_CHARS, "an e-mail address before the @ (letters, digits and . _ + & -)")
    if local.startswith(".") or local.endswith(".") or ".." in local:
        raise ValueError(f"not an e-mail address (a dot at an end or two dots): {value!r}")
    return f"{local}@{_mail_domain(domain)}"


def _zone_size(text: str) -> int:
    """An nginx shared memory zone's size: 32K (nginx's least) to 1G."""
    value = parse_size(text)
    if not 32 * 1024 <= value <= 1024**3:
        raise ValueError(f"must be between 32K and 1G, got {text.strip()!r}")
    return value


@dataclass(frozen=True)
class WebSection:
    """`[web]`: the onboarding service behind nginx (`/new`) and the relay's pages."""

    socket: str = _opt(_abs_path, "/run/chatmail/web.sock", "socket path when not socket-activated")
    root: str = _opt(
        _abs_path,
        "/var/lib/chatmail/www",
        "directory nginx serves the relay's pages from (`chatmail-web site` writes them)",
    )
    new_per_window: int = _opt(
        _int_range(1, 1000000),
        "600",
        "ceiling: accounts `/new` hands out per window, for everyone together (no address is "
        "kept); far above the per-client limit",
    )
    new_window: int = _opt(_int_range(1, 86400), "60", "length of that window in seconds")
    new_client_per_minute: int = _opt(
        _int_range(1, 60000),
        "10",
        "`POST /new` per minute from one client address (nginx `limit_req`, counted in "
        "nginx's memory only)",
    )
    new_client_burst: int = _opt(
        _int_range(1, 10000),
        "20",
        "requests one client address may send at once beyond that rate (then 429)",
    )
    new_client_zone: int = _opt(
        _zone_size,
        "1M",
        "shared memory zone of those counters in nginx (1M: about 8000 client addresses at once)",
    )
    login_host: str = _opt(
        _optional_host,
        "",
        "IMAP and SMTP host named in that `dclogin_url` (default: mail_domain)",
    )
    login_imaps_port: int = _opt(
        _int_range(1, 65535), "993", "IMAP (implicit TLS) port named in that `dclogin_url`"
    )
    login_smtps_port: int = _opt(
        _int_range(1, 65535), "465", "SMTP submission (implicit TLS) port named in it"
    )
    operator_contact: str = _opt(
        _optional_email,
        "",
        "the operator's e-mail address: on the privacy page and as IMAP METADATA /shared/admin "
        "(default: postmaster@ the mail domain)",
    )


@dataclass(frozen=True)
class FederationSection:
    """`[federation]`: mail between relays over HTTPS (`POST /mxdeliv`, chatmail-mxdeliv)."""

    https: bool = _opt(
        _bool,
        "yes",
        "mail between relays over HTTPS, both directions (yes or no; no: nginx answers /mxdeliv "
        "with 404, and Postfix delivers remote mail over SMTP only)",
    )
    socket: str = _opt(
        _abs_path, "/run/chatmail/mxdeliv.sock", "socket path when not socket-activated"
    )
    smtpd_port: int = _opt(
        _int_range(1, 65535),
        "10026",
        "port on 127.0.0.1 of the Postfix smtpd that checks mail received over HTTPS as port 25 "
        "does (milter included)",
    )
    send_socket: str = _opt(
        _abs_path,
        "/var/spool/postfix/chatmail/mxsend.sock",
        "LMTP socket of chatmail-mxsend (Postfix delivers remote mail there) when not "
        "socket-activated",
    )
    return_socket: str = _opt(
        _abs_path,
        "/var/spool/postfix/public/mxreturn",
        "Postfix's smtpd socket where chatmail-mxsend hands mail back for SMTP delivery",
    )
    https_skip: int = _opt(
        _int_range(0, 86400),
        "1800",
        "seconds without HTTPS to a host after mail to it was handed to SMTP",
    )
    ca_file: str = _opt(
        _optional_abs_path,
        "",
        "CA certificates the HTTPS peers are verified against (empty: the system's roots)",
    )
    tls_policy: str = _opt(
        _abs_path,
        "/etc/postfix/tls_policy",
        "Postfix's TLS policy table; its exceptions relax HTTPS verification as for SMTP",
    )


SECTIONS: dict[str, type] = {
    "chatmail": ChatmailSection,
    "auth": AuthSection,
    "milter": MilterSection,
    "expire": ExpireSection,
    "dkim": DkimSection,
    "dns": DnsSection,
    "metadata": MetadataSection,
    "tls": TlsSection,
    "imap": ImapSection,
    "web": WebSection,
    "federation": FederationSection,
}


@dataclass(frozen=True)
class Config:
    """The whole parsed configuration."""

    path: str
    chatmail: ChatmailSection
    auth: AuthSection
    milter: MilterSection
    expire: ExpireSection
    dkim: DkimSection
    dns: DnsSection
    metadata: MetadataSection
    tls: TlsSection
    imap: ImapSection
    web: WebSection
    federation: FederationSection
    warnings: tuple[str, ...] = ()


def _default_text(spec: Any) -> str:
    default = spec.metadata["default"]
    return default() if callable(default) else default


def default(section: type, name: str) -> Any:
    """The parsed default of option `name` of a section class: the one source of defaults."""
    (spec,) = (spec for spec in fields(section) if spec.name == name)
    return spec.metadata["parse"](_default_text(spec))


def _build_section(cls: type, path: str, name: str, raw: dict[str, str]) -> Any:
    values = {}
    for spec in fields(cls):
        text = raw.get(spec.name)
        if text is None:
            text = _default_text(spec)
        try:
            refuse_control(text)
            values[spec.name] = spec.metadata["parse"](text)
        except ValueError as exc:
            raise ConfigError(f"{path}: [{name}] {spec.name}: {exc}") from None
    return cls(**values)


def parse_config(text: str, path: str = "<string>") -> Config:
    """Parse INI text into a validated `Config`; raise `ConfigError` on the first bad value."""
    parser = configparser.ConfigParser(interpolation=None, default_section="\0none")
    try:
        parser.read_string(text, source=path)
    except configparser.Error as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{path}: not a valid INI file: {first_line}") from None
    warnings = []
    for name in parser.sections():
        if name not in SECTIONS:
            warnings.append(f"{path}: unknown section [{name}] ignored")
            continue
        known = {spec.name for spec in fields(SECTIONS[name])}
        warnings.extend(
            f"{path}: [{name}] {key}: unknown key ignored"
            for key in parser[name]
            if key not in known
        )
    sections = {
        name: _build_section(
            cls, path, name, dict(parser[name]) if parser.has_section(name) else {}
        )
        for name, cls in SECTIONS.items()
    }
    auth = sections["auth"]
    if auth.username_min_length > auth.username_max_length:
        raise ConfigError(f"{path}: [auth] username_min_length: larger than username_max_length")
    expire = sections["expire"]
    if expire.quota_trim_target > expire.quota_trim_start:
        raise ConfigError(f"{path}: [expire] quota_trim_target: larger than quota_trim_start")
    return Config(path=path, warnings=tuple(warnings), **sections)


def config_path(cli_path: str | None = None) -> tuple[str, bool]:
    """Return the config path to use and whether it was asked for explicitly.

    `--config` wins over `$CHATMAIL_CONFIG`, which wins over the default path.
    """
    if cli_path:
        return cli_path, True
    env = os.environ.get(CONFIG_ENV)
    if env:
        return env, True
    return DEFAULT_CONFIG_PATH, False


def load_config(cli_path: str | None = None) -> Config:
    """Read and validate the configuration file.

    A file named explicitly (flag or environment) must exist; a missing default file means
    all defaults, with a warning.
    """
    path, explicit = config_path(cli_path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"{path}: configuration file not found") from None
        warning = f"{path}: not found, using built-in defaults"
        return dataclasses.replace(parse_config("", path), warnings=(warning,))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    return parse_config(text, path)


def option_docs() -> list[tuple[str, str, str, str]]:
    """(section, key, default, description) for every option, in schema order."""
    rows = []
    for name, cls in SECTIONS.items():
        for spec in fields(cls):
            default = spec.metadata["default"]
            shown = "(this host's FQDN)" if callable(default) else default
            rows.append((name, spec.name, shown, spec.metadata["doc"]))
    return rows
