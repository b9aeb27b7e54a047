"""Logging for the services: plain lines on stderr, which journald timestamps and stores.

Privacy rules: never log an IP address; log mail addresses only at debug level.
"""

from __future__ import annotations

import logging
import sys


def setup_logging(level: str, name: str) -> logging.Logger:
    """Configure the root logger once and return the service's logger."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    return logging.getLogger(name)
