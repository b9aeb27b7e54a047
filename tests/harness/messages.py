"""Mail for tests that cross servers: Delta Chat samples, DKIM signing and checking, Maildirs.

Signing and checking use dkimpy directly (not our milter), so a test can judge what the milter
did with an independent implementation.
"""

from __future__ import annotations

import imaplib
import ssl
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import TypeVar

import dkim

SAMPLES = Path("/work/shared/samples/deltachat-2.65")
if not SAMPLES.is_dir():  # the repo's own location relative to the shared folder
    SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples" / "deltachat-2.65"
TLS = ssl._create_unverified_context()  # the relays' test certificates; not a security check

T = TypeVar("T")


def crlf(data: bytes) -> bytes:
    """LF line endings to CRLF (what goes over SMTP)."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def sample(name: str, sender: str, rcpt: str, message_id: str | None = None) -> bytes:
    """A Delta Chat sample as its client submitted it, re-addressed from sender to rcpt.

    The samples are stored as delivered (Return-Path and Received on top, LF endings; see
    their README): those headers are dropped, the addresses and the Message-ID replaced.
    """
    text = (SAMPLES / name).read_bytes().replace(b"\r\n", b"\n")
    head, body = text.split(b"\n\n", 1)
    fields: list[bytes] = []
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b"\n" + line
        else:
            fields.append(line)
    kept = []
    for field in fields:
        name_ = field.split(b":", 1)[0].lower()
        if name_ in (b"return-path", b"received"):
            continue
        if name_ == b"message-id" and message_id:
            field = f"Message-ID: <{message_id}>".encode()
        kept.append(field)
    data = b"\n".join(kept) + b"\n\n" + body
    old_from = _address(kept, b"from")
    old_to = _address(kept, b"to")
    if old_from:
        data = data.replace(old_from, sender.encode())
    if old_to:
        data = data.replace(old_to, rcpt.encode())
    return crlf(data)


def _address(fields: list[bytes], name: bytes) -> bytes | None:
    for field in fields:
        if field.split(b":", 1)[0].lower() == name and b"<" in field:
            return field.split(b"<", 1)[1].split(b">", 1)[0]
    return None


def cleartext(sender: str, rcpt: str, message_id: str, subject: str = "hi") -> bytes:
    """A plain text message, as any mail program sends it."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = rcpt
    message["Subject"] = subject
    message["Date"] = "Tue, 01 Dec 2026 12:00:00 +0000"
    message["Message-ID"] = f"<{message_id}>"
    message.set_content("no encryption here")
    return crlf(message.as_bytes())


def new_message_id(domain: str) -> str:
    return make_msgid(domain=domain)[1:-1]


def dkim_sign(message: bytes, domain: str, selector: str, key_pem: bytes) -> bytes:
    """The message with a DKIM-Signature of d=domain on top (relaxed/simple, RSA-SHA256)."""
    signature = dkim.sign(
        message,
        selector.encode(),
        domain.encode(),
        key_pem,
        canonicalize=(b"relaxed", b"simple"),
        include_headers=[b"from", b"to", b"subject", b"date", b"message-id", b"content-type"],
    )
    return signature + message


def dkim_verifies(message: bytes, records: dict[str, str]) -> bool:
    """Whether dkimpy verifies the message's first DKIM-Signature, with the key records
    given as {"<selector>._domainkey.<domain>.": TXT value} instead of DNS."""

    def lookup(name: bytes | str, timeout: float = 5) -> bytes | None:
        key = name.decode() if isinstance(name, bytes) else name
        value = records.get(key if key.endswith(".") else key + ".")
        return value.encode() if value is not None else None

    return bool(dkim.verify(crlf(message), dnsfunc=lookup))


def signature_domains(message: bytes) -> list[str]:
    """The d= of every DKIM-Signature header of the message, top first."""
    head = crlf(message).split(b"\r\n\r\n", 1)[0].decode(errors="replace")
    unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ")
    domains = []
    for line in unfolded.split("\r\n"):
        if line.lower().startswith("dkim-signature:"):
            tags = dict(
                part.strip().split("=", 1)
                for part in line.split(":", 1)[1].split(";")
                if "=" in part
            )
            domains.append(tags.get("d", "").strip().lower())
    return domains


def maildir_files(home: Path) -> list[Path]:
    """Every message file below an account's Maildir (all folders)."""
    return sorted(p for p in home.rglob("*") if p.is_file() and p.parent.name in ("cur", "new"))


def messages_with(home: Path, needle: bytes) -> list[bytes]:
    """The stored messages of an account that contain `needle`."""
    found = []
    for path in maildir_files(home):
        try:
            data = path.read_bytes()
        except FileNotFoundError:  # expunged meanwhile
            continue
        if needle in data:
            found.append(data)
    return found


def wait_until(predicate: Callable[[], T], timeout: float = 60.0, interval: float = 0.2) -> T:
    """Call predicate until it returns something true or the time is up; return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def imap_login(host: str, port: int, addr: str, password: str) -> None:
    """Log in once over IMAPS (a chatmail relay creates the account on its first login)."""
    imap = imaplib.IMAP4_SSL(host, port, ssl_context=TLS)
    imap.login(addr, password)
    imap.logout()
