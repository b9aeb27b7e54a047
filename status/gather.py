"""The I/O of the checks: each reads what it needs and hands it to a rule in `rules`."""

from __future__ import annotations

import datetime
import os
from pathlib import Path

from chatmail_services.authsocket.accounts import Settings, headroom_refusal, iter_users
from chatmail_services.dnszone.check import check_zone
from chatmail_services.dnszone.records import config_records
from chatmail_services.metadata import notifyqueue
from cryptography import x509

from chatmail_services import dnsquery
from chatmail_services.config import Config, ConfigError, load_config
from chatmail_services.mailconfig import tls_paths

from . import rules, systemd
from .model import Check, State, not_readable
from .redact import redact

POSTFIX_QUEUE_DIR = "/var/spool/postfix"
POSTFIX_QUEUES = ("active", "deferred")
REAPER_JOURNAL_LINES = 20  # the summary is the run's last line; errors may come before


def check_config(path: str | None) -> tuple[Check, Config | None]:
    """The configuration loaded with the services' own loader."""
    try:
        config = load_config(path)
    except ConfigError as exc:
        return Check("config", State.BROKEN, redact(str(exc))), None
    text = f"{config.path} valid"
    if config.warnings:
        text += f" ({len(config.warnings)} warnings: {redact(config.warnings[0])})"
    return Check("config", State.OK, text, {"warnings": len(config.warnings)}), config


def check_certificate(config: Config, now: float, privileged: bool) -> Check:
    """Days left of the first certificate in [tls] cert_file (or its default)."""
    path = tls_paths(config)[0]
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return Check("certificate", State.BROKEN, f"{path} missing")
    except OSError as exc:
        return not_readable("certificate", privileged, path, exc)
    try:
        cert = x509.load_pem_x509_certificate(data)
    except ValueError:
        return Check("certificate", State.BROKEN, f"{path}: not a PEM certificate")
    return rules.judge_certificate(not_after(cert), now)


def not_after(cert: x509.Certificate) -> float:
    """The end of validity (UTC epoch); Debian 12's cryptography 38 has no `_utc` form."""
    if hasattr(cert, "not_valid_after_utc"):
        return cert.not_valid_after_utc.timestamp()
    return cert.not_valid_after.replace(tzinfo=datetime.UTC).timestamp()


def count_files(directory: Path) -> int:
    """Regular files below `directory` (Postfix's hashed queue subdirectories included)."""
    count = 0
    for _root, _dirs, files in os.walk(directory, onerror=_raise):
        count += len(files)
    return count


def _raise(exc: OSError) -> None:
    raise exc


def check_postfix_queue(queue_dir: str, privileged: bool) -> Check:
    """Messages in Postfix's active and deferred queues (files; the queues are Postfix's,
    mode 0700: root only)."""
    counts = {}
    for name in POSTFIX_QUEUES:
        directory = Path(queue_dir) / name
        if not directory.is_dir() and privileged:
            return Check("postfix-queue", State.BROKEN, f"no Postfix queue at {directory}")
        try:
            counts[name] = count_files(directory)
        except OSError as exc:
            return not_readable("postfix-queue", privileged, f"the {name} queue", exc)
    return rules.judge_postfix_queue(counts["active"], counts["deferred"])


def check_notify_queue(config: Config, now: float, privileged: bool) -> Check:
    """chatmail-metadata's pending notifications: how many, the oldest (read with its own
    decoder; nothing of a file is shown)."""
    section = config.metadata
    count = damaged = 0
    oldest: float | None = None
    try:
        for entry in os.scandir(section.queue_dir):
            if not entry.name.endswith(notifyqueue.SUFFIX):
                continue
            pending = notifyqueue.decode(Path(entry.path).read_bytes())
            if pending is None:
                damaged += 1
                continue
            count += 1
            oldest = pending.since if oldest is None else min(oldest, pending.since)
    except FileNotFoundError:
        return Check("notify-queue", State.DEGRADED, f"{section.queue_dir} missing")
    except OSError as exc:
        return not_readable("notify-queue", privileged, section.queue_dir, exc)
    age = None if oldest is None else now - oldest
    return rules.judge_notify_queue(
        count, age, damaged, section.notify_queue_max, section.notify_give_up_after
    )


def _settings(config: Config) -> Settings:
    # uid and gid are what the responder hands Dovecot; the headroom rule does not use them
    return Settings(config.chatmail, config.auth, os.getuid(), os.getgid())


def check_disk(config: Config, privileged: bool) -> Check:
    """Free space and inodes of mailboxes_dir, and auth's own account creation rule."""
    path = config.chatmail.mailboxes_dir
    try:
        st = os.statvfs(path)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            return Check("disk", State.BROKEN, f"{path} missing")
        return not_readable("disk", privileged, path, exc)
    return rules.judge_disk(
        st.f_bavail * st.f_frsize,
        st.f_favail,
        st.f_files,
        config.auth.min_free_disk,
        headroom_refusal(_settings(config)),
    )


def check_accounts(config: Config, privileged: bool) -> Check:
    """The number of accounts (information: never degrades the relay)."""
    try:
        count = sum(1 for _ in iter_users(_settings(config)))
    except OSError as exc:
        return not_readable("accounts", privileged, config.chatmail.mailboxes_dir, exc)
    return Check("accounts", State.OK, f"{count} accounts", {"count": count})


def check_dns(config: Config, privileged: bool) -> Check:
    """chatmail-dns --check, summarised (dnszone's own records and comparison; the DKIM
    record needs the private key, readable by root and the mail user only)."""
    key_file = config.dkim.key_file
    if not privileged:
        try:
            Path(key_file).read_bytes()
        except PermissionError:
            return Check("dns", State.UNKNOWN, f"{key_file} not readable without root")
        except OSError:
            pass  # missing: config_records says so below
    try:
        records = config_records(config)
    except (ConfigError, OSError, ValueError) as exc:
        return Check("dns", State.DEGRADED, f"no zone to check: {redact(str(exc))}")
    resolver = dnsquery.make_resolver(config.dkim.resolver, config.dkim.dns_timeout)
    findings = check_zone(resolver, records)
    return rules.judge_dns(
        [(f"{f.record.name} {f.record.rtype}", f.record.required, f.status) for f in findings]
    )


def check_units(privileged: bool) -> Check:
    """Every unit's state from systemd, with the last error line of each one not OK."""
    try:
        props = systemd.show(rules.SHOWN)
    except systemd.SystemdError as exc:
        return Check("units", State.DEGRADED, str(exc))
    check = rules.judge_units(props, {})
    if check.state is State.OK or not privileged:
        return check
    errors = {}
    for unit, kind in rules.judged_units(props):
        if rules.unit_state(kind, props[unit])[0] > State.OK:
            errors[unit] = systemd.last_error(unit)
    return rules.judge_units(props, errors)


def check_reaper(now: float, privileged: bool) -> Check:
    """chatmail-expire.service's last run (systemd) and its summary line (the journal)."""
    try:
        props = systemd.show([rules.REAPER_UNIT])[rules.REAPER_UNIT]
        finished = systemd.parse_timestamp(props.get("ExecMainExitTimestamp", ""))
    except (systemd.SystemdError, ValueError) as exc:
        return Check("reaper", State.DEGRADED, redact(str(exc)))
    summary = None
    if finished is not None and privileged:
        lines = systemd.journal_lines(rules.REAPER_UNIT, REAPER_JOURNAL_LINES) or []
        for line in reversed(lines):
            summary = rules.parse_reaper_summary(line)
            if summary is not None:
                break
    return rules.judge_reaper(props, finished, summary, now)
