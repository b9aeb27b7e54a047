"""What the command-line front ends share: `--config`, and the one way from the configuration
to a service's settings, whose every error is one line on stderr and the exit status 78."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import NoReturn, TypeVar

from .config import EX_CONFIG, Config, ConfigError, load_config

T = TypeVar("T")
CONFIG_ERROR = "configuration error"


def command_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The argument parser of one front end, with the `--config` option they all have."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="configuration file (default: $CHATMAIL_CONFIG, else /etc/chatmail/chatmail.ini)",
    )
    return parser


def add_dict_serve_command(sub: argparse._SubParsersAction) -> None:
    """`serve [--socket PATH]` of a dict responder (chatmail-auth, chatmail-metadata)."""
    serve = sub.add_parser("serve", help="serve Dovecot's dict protocol (socket activation)")
    serve.add_argument("--socket", metavar="PATH", help="socket path without socket activation")


def exit_config(exc: ConfigError, prefix: str = CONFIG_ERROR) -> NoReturn:
    """Print `prefix: <the error>` and exit with 78 (EX_CONFIG)."""
    print(f"{prefix}: {exc}", file=sys.stderr)
    raise SystemExit(EX_CONFIG) from None


def build_or_exit(build: Callable[[Config], T], config: Config, prefix: str = CONFIG_ERROR) -> T:
    """`build(config)`: a service's settings; a `ConfigError` it raises exits with 78."""
    try:
        return build(config)
    except ConfigError as exc:
        exit_config(exc, prefix)


def load_or_exit(path: str | None) -> Config:
    """Load the configuration; on a bad value print one line and exit with 78 (EX_CONFIG)."""
    try:
        return load_config(path)
    except ConfigError as exc:
        exit_config(exc)


def log_config_warnings(config: Config) -> None:
    for warning in config.warnings:
        logging.getLogger("chatmail.config").warning("%s", warning)
