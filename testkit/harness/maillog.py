"""What tests read from a relay's logs: queue ids of a message, the milter's DKIM verdicts and
the signatures it added (delivery to Dovecot strips them from the stored file)."""

from __future__ import annotations

import re

from .relay import LocalRelay

DKIM_PASS = "DKIM: valid aligned DKIM signature"
SIGNED = ": signed: DKIM-Signature:"  # the milter's debug line for a signature it added


def queue_ids_of(relay: LocalRelay, message_id: str) -> list[str]:
    """The queue ids the relay's Postfix gave a message (by its Message-ID), oldest first."""
    return queue_ids_in(relay.postfix.log_text(), message_id)


def queue_ids_in(postfix_log: str, message_id: str) -> list[str]:
    """The queue ids a Postfix log gives the message with this Message-ID, oldest first."""
    return re.findall(rf"(\w+): message-id=<{re.escape(message_id)}>", postfix_log)


def milter_verified(relay: LocalRelay, message_id: str) -> bool:
    """Whether the relay's milter logged a valid aligned DKIM signature for the message
    (at debug level, by queue id) when it arrived."""
    logs = relay.service_logs()
    return any(f"{qid}: {DKIM_PASS}" in logs for qid in queue_ids_of(relay, message_id))


def signature_logged(postfix_log: str, milter_log: str, message_id: str) -> bytes | None:
    """The DKIM-Signature field a milter logged (debug) for the message with this Message-ID
    (by its queue ids in the Postfix log), as a header line to put on top of the stored file,
    or None."""
    ids = queue_ids_in(postfix_log, message_id)
    for line in milter_log.splitlines():
        for qid in ids:
            head, found, value = line.partition(f"{qid}{SIGNED}")
            if found and (not head or head.endswith(" ")):
                return b"DKIM-Signature:" + value.encode() + b"\r\n"
    return None


def milter_signature(relay: LocalRelay, message_id: str) -> bytes | None:
    """The DKIM-Signature the relay's milter added to the message (see `signature_logged`)."""
    return signature_logged(relay.postfix.log_text(), relay.service_logs(), message_id)


def message_id_of(message: bytes) -> str:
    match = re.search(rb"^Message-ID:\s*<([^>]+)>", message, re.IGNORECASE | re.MULTILINE)
    assert match, message[:500]
    return match.group(1).decode()
