"""What the three command-line front ends share: `--config` and the exit status 78."""

from __future__ import annotations

import argparse
import logging
import sys

from .config import EX_CONFIG, Config, ConfigError, load_config


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="configuration file (default: $CHATMAIL_CONFIG, else /etc/chatmail/chatmail.ini)",
    )


def load_or_exit(path: str | None) -> Config:
    """Load the configuration; on a bad value print one line and exit with 78 (EX_CONFIG)."""
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(EX_CONFIG) from None
    return config


def log_config_warnings(config: Config) -> None:
    for warning in config.warnings:
        logging.getLogger("chatmail.config").warning("%s", warning)
