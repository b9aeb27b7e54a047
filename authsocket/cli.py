"""Command line of chatmail-auth: `serve`, `checkpassword`, `new-credentials`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from chatmail_services import credentials, dictserver, layout
from chatmail_services.address import account_address
from chatmail_services.cli import (
    add_dict_serve_command,
    build_or_exit,
    command_parser,
    load_or_exit,
    log_config_warnings,
)
from chatmail_services.config import Config
from chatmail_services.logsetup import setup_logging
from chatmail_services.metrics import Registry
from chatmail_services.textfile import config_publisher

from . import accounts
from .accounts import Settings, Status
from .hashing import verify_password
from .metrics import AuthMetrics
from .session import Session

EX_TEMPFAIL = 111  # checkpassword: temporary failure


def cmd_serve(config: Config, socket_path: str | None) -> int:
    setup_logging(config.chatmail.log_level, "chatmail.auth")
    log_config_warnings(config)
    settings = build_or_exit(accounts.settings_from_config, config)
    metrics = AuthMetrics(Registry()) if config.chatmail.metrics_dir else None
    publisher = config_publisher(config, "chatmail-auth", metrics.registry) if metrics else None
    try:
        return dictserver.serve(
            lambda: Session(settings, metrics=metrics), socket_path or config.auth.socket, "auth"
        )
    finally:
        if publisher is not None:
            publisher.stop()


def _read_fd3() -> bytes:
    chunks = []
    total = 0
    while total < 1024:
        chunk = os.read(3, 1024)
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    os.close(3)
    return b"".join(chunks)


def cmd_checkpassword(config: Config, reply: list[str]) -> int:
    """Dovecot's checkpassword: `user\\0password\\0` on fd 3; exec `reply` on success.

    Exit 1: unknown user or wrong password; 3: unknown user (userdb-only call,
    AUTHORIZED=1); 111: temporary failure; 2: unusable input.
    """
    setup_logging(config.chatmail.log_level, "chatmail.auth")
    settings = build_or_exit(accounts.settings_from_config, config)
    try:
        data = _read_fd3()
    except OSError:
        return 2
    parts = data.split(b"\0")
    if len(parts) < 2:
        return 2
    user = parts[0].decode("utf-8", "surrogateescape")
    password = parts[1].decode("utf-8", "surrogateescape")
    userdb_only = os.environ.get("AUTHORIZED") == "1"
    if userdb_only:
        result = accounts.lookup_userdb(settings, user)
    else:
        result = accounts.lookup_passdb(settings, user, password)
    if result.status is Status.TEMPFAIL:
        logging.getLogger("chatmail.auth").warning("temporary failure: %s", result.reason)
        return EX_TEMPFAIL
    if result.status is not Status.FOUND:
        return 3 if userdb_only else 1
    if not userdb_only:
        stored = str(result.fields["password"])
        if not verify_password(password.encode("utf-8", "surrogateescape"), stored):
            return 1
    address = accounts.normalize_address(settings, user)
    env = dict(os.environ)
    env["USER"] = str(address)
    env["HOME"] = str(result.fields["home"])
    extra = []
    for key in ("uid", "gid", "quota_rule", "quota_storage_size"):
        env[f"userdb_{key}"] = str(result.fields[key])
        extra.append(f"userdb_{key}")
    env["EXTRA"] = " ".join(extra)
    if userdb_only:
        env["AUTHORIZED"] = "2"
    if not reply:
        return 0
    try:
        os.execvpe(reply[0], reply, env)
    except OSError as exc:
        print(f"chatmail-auth: cannot run {reply[0]}: {exc.strerror}", file=sys.stderr)
        return EX_TEMPFAIL
    return 0  # not reached


def new_credentials(settings: Settings) -> dict[str, str]:
    """A random unused valid address and a strong password; stores nothing."""
    for _ in range(100):
        local = credentials.new_local_part(settings.auth.username_max_length)
        address = account_address(settings.chatmail.mail_domain, local)
        if not os.path.lexists(layout.account_dir(settings.chatmail.mailboxes_dir, address)):
            break
    password_length = min(settings.auth.password_min_length, accounts.MAX_PASSWORD_BYTES)
    return {"email": address, "password": credentials.new_password(password_length)}


def main(argv: list[str] | None = None) -> int:
    parser = command_parser(
        "chatmail-auth",
        "Dovecot auth responder: accounts are created on first login.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_dict_serve_command(sub)
    check = sub.add_parser("checkpassword", help="Dovecot 2.3 checkpassword interface")
    check.add_argument("reply", nargs=argparse.REMAINDER, help="program to run on success")
    sub.add_parser("new-credentials", help="print a random new address and password as JSON")
    args = parser.parse_args(argv)
    config = load_or_exit(args.config)
    if args.command == "serve":
        return cmd_serve(config, args.socket)
    if args.command == "checkpassword":
        return cmd_checkpassword(config, args.reply)
    print(json.dumps(new_credentials(build_or_exit(accounts.settings_from_config, config))))
    return 0
