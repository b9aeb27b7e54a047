"""What tests read from a relay's logs: queue ids of a message, the milter's DKIM verdicts."""

from __future__ import annotations

import re

from .relay import LocalRelay

DKIM_PASS = "DKIM: valid aligned DKIM signature"


def queue_ids_of(relay: LocalRelay, message_id: str) -> list[str]:
    """The queue ids the relay's Postfix gave a message (by its Message-ID), oldest first."""
    pattern = rf"(\w+): message-id=<{re.escape(message_id)}>"
    return re.findall(pattern, relay.postfix.log_text())


def milter_verified(relay: LocalRelay, message_id: str) -> bool:
    """Whether the relay's milter logged a valid aligned DKIM signature for the message
    (at debug level, by queue id) when it arrived."""
    logs = relay.service_logs()
    return any(f"{qid}: {DKIM_PASS}" in logs for qid in queue_ids_of(relay, message_id))


def message_id_of(message: bytes) -> str:
    match = re.search(rb"^Message-ID:\s*<([^>]+)>", message, re.IGNORECASE | re.MULTILINE)
    assert match, message[:500]
    return match.group(1).decode()
