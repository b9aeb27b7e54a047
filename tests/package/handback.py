"""Remote mail of a packaged relay under its real units: chatmail-mxsend (User=vmail,
SupplementaryGroups=postdrop, PrivateUsers=yes) hands what it does not send over HTTPS back to
Postfix's `mxreturn` smtpd on public/mxreturn (directory 0710 root:postdrop), whose content
filter gives it to the smtp client at once.

An address literal has no host to post to, so mxsend hands it to SMTP straight away
(`mxsend/deliver.py`). The container's Postfix listens on port 25 of every loopback address,
so the smtp client's attempt at `[127.0.0.9]` meets the relay itself and ends in Postfix's
"loops back to myself": what matters is that the smtp client tried the destination.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from harness.container import Container
from harness.maillog import queue_ids_in
from harness.messages import new_message_id, sample, wait_until

DESTINATION = "127.0.0.9"
ENCRYPTED = "chat-text-alice-to-bob"  # the milter lets an encrypted message out
HANDED_BACK = "status=sent (250 2.0.0 Ok: handed to SMTP)"
NOT_HANDED_BACK = "Cannot hand the message to SMTP now"  # mxsend/handback.py's 451
# first login creates the account (IMAP), then authenticated submission on 465
SUBMIT = """
import imaplib, smtplib, ssl, sys
address, password, rcpt, path = sys.argv[1:5]
context = ssl._create_unverified_context()
imap = imaplib.IMAP4_SSL("127.0.0.1", 993, ssl_context=context, timeout=60)
imap.login(address, password)
imap.logout()
with smtplib.SMTP_SSL("127.0.0.1", 465, context=context, timeout=60) as smtp:
    smtp.login(address, password)
    smtp.sendmail(address, [rcpt], open(path, "rb").read())
print("sent")
"""


@dataclass(frozen=True)
class HandBack:
    """What Postfix logged for one message handed back: its two queue ids and the lines."""

    first: str  # the queue entry Postfix's lmtp client gave to mxsend
    returned: str  # the entry mxreturn queued
    lines: list[str]


def postfix_log(ct: Container) -> str:
    """Postfix's lines of this boot in the container's journal (`postfix/<service>[pid]:`)."""
    out = ct.check(["journalctl", "-b", "--no-pager", "-o", "short"], timeout=60)
    return "\n".join(line for line in out.splitlines() if " postfix/" in line)


def _lines_of(log: str, qid: str) -> list[str]:
    return [line for line in log.splitlines() if f"]: {qid}: " in line]


def _outcome(ct: Container, message_id: str) -> tuple[str, str, str] | None:
    """(first queue id, mxreturn's queue id, log) once the smtp client has logged a status
    for the handed-back copy; None before."""
    log = postfix_log(ct)
    ids = queue_ids_in(log, message_id)
    if len(ids) < 2:
        return None
    first, returned = ids[0], ids[1]
    smtp = [line for line in _lines_of(log, returned) if "postfix/smtp[" in line]
    if not any("status=" in line for line in smtp):
        return None
    return first, returned, log


def submit_to_literal(ct: Container, address: str) -> str:
    """Submit an encrypted message from `address` (a new account) to someone@[127.0.0.9];
    its Message-ID."""
    rcpt = f"someone@[{DESTINATION}]"
    message_id = new_message_id(address.split("@", 1)[1])
    ct.path("/root/handback.eml").write_bytes(sample(ENCRYPTED, address, rcpt, message_id))
    password = secrets.token_urlsafe(16)
    argv = ["python3", "-c", SUBMIT, address, password, rcpt, "/root/handback.eml"]
    assert ct.check(argv, timeout=180).strip() == "sent"
    return message_id


def _context(ct: Container) -> str:
    mxsend = ct.run(["journalctl", "-b", "--no-pager", "-o", "cat", "-u", "chatmail-mxsend"])
    return postfix_log(ct)[-6000:] + "\n" + mxsend.stdout[-3000:]


def wait_handed_back(ct: Container, message_id: str, timeout: float = 120) -> HandBack:
    """Wait (bounded) until the smtp client has tried the handed-back copy of the message;
    the lines of both queue entries. Fails with the relevant log when that does not happen."""
    outcome = wait_until(lambda: _outcome(ct, message_id), timeout=timeout, interval=1)
    assert outcome, _context(ct)
    first, returned, log = outcome
    return HandBack(first, returned, _lines_of(log, first) + _lines_of(log, returned))


def hand_back_to_a_literal(ct: Container, address: str, timeout: float = 120) -> HandBack:
    """`submit_to_literal`, then `wait_handed_back`."""
    return wait_handed_back(ct, submit_to_literal(ct, address), timeout)


def wait_deferred(ct: Container, message_id: str, timeout: float = 120) -> list[str]:
    """Wait (bounded) until Postfix logs the message deferred by mxsend; the lines of its
    queue entries (there is no second one: nothing was handed back)."""

    def deferred() -> tuple[list[str], list[str]] | None:
        log = postfix_log(ct)
        ids = queue_ids_in(log, message_id)
        lines = [line for qid in ids for line in _lines_of(log, qid)]
        return (ids, lines) if any("status=deferred" in line for line in lines) else None

    outcome = wait_until(deferred, timeout=timeout, interval=1)
    assert outcome, _context(ct)
    ids, lines = outcome
    assert len(ids) == 1, lines
    return lines


def assert_handed_back(result: HandBack, deferred_before: bool = False) -> None:
    """mxsend's LMTP reply for the first entry is the hand-back's 250 (and, unless it was
    `deferred_before`, no 451 of a failed hand-back), mxreturn's smtpd queued the copy, and
    the smtp client (not mxsend again) connected to the literal's port 25."""
    text = "\n".join(result.lines)
    first = [line for line in result.lines if f"]: {result.first}: " in line]
    returned = [line for line in result.lines if f"]: {result.returned}: " in line]
    assert any("postfix/mxsend/" in line and HANDED_BACK in line for line in first), text
    assert deferred_before or not any(NOT_HANDED_BACK in line for line in first), text
    assert any(re.search(r"postfix/mxreturn/smtpd\[\d+\]: ", line) for line in returned), text
    smtp = [line for line in returned if "postfix/smtp[" in line and "status=" in line]
    assert smtp and all(f"relay={DESTINATION}[{DESTINATION}]:25" in line for line in smtp), text
    assert not any("postfix/mxsend/" in line for line in returned), text
