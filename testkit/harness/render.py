"""Rendering for the harness: the package's own (chatmail_services.templating, .mailconfig)."""

from __future__ import annotations

from chatmail_services.mailconfig import (  # noqa: F401  (re-exported for the harness)
    POSTFIX_COPIED,
    POSTFIX_RENDERED,
    SYSTEM_CA_FILE,
    domain_regex,
    postfix_values,
    turn_values,
)
from chatmail_services.templating import PLACEHOLDER, render, render_text  # noqa: F401
