"""Mail for tests, benchmarks and the local relay: test accounts, Delta-Chat-shaped messages,
the Delta Chat samples, DKIM signing and checking, Maildirs.

The builders produce the exact shape Delta Chat 2.65 sends (CRLF throughout). Signing and
checking use dkimpy directly (not our milter), so a test can judge what the milter did with an
independent implementation.
"""

from __future__ import annotations

import functools
import imaplib
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import TypeVar

import dkim

# The test accounts of the milter tests and benchmarks (local parts of the minimum length 9).
DOMAIN = "chat.example"
ALICE = f"alice1234@{DOMAIN}"
BOB = f"bob123456@{DOMAIN}"
BOUNDARY = "18eb06d86b123ffe_546051fd537078a1_a23cbb36c29b26fd"
MESSAGE_ID = "3633f881-f839-4bb2-8257-fa83a4398f1e@localhost"
PGP_MIME = '; protocol="application/pgp-encrypted"'

SAMPLES = Path("/work/shared/samples/deltachat-2.65")
if not SAMPLES.is_dir():  # the repo's own location relative to the shared folder
    SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples" / "deltachat-2.65"
SAMPLE_COUNT = 22
SWAKS_SAMPLE = "swaks-plaintext-not-deltachat"  # the one sample Delta Chat did not send
TLS = ssl._create_unverified_context()  # the relays' test certificates; not a security check

T = TypeVar("T")


def crlf(data: bytes) -> bytes:
    """LF line endings to CRLF (what goes over SMTP)."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


# -- message builders (exact Delta Chat shape) --


def encrypted_head(
    sender: str = ALICE,
    *,
    boundary: str = BOUNDARY,
    protocol: str | None = PGP_MIME,
    extra_headers: str = "",
    message_id: str = MESSAGE_ID,
) -> str:
    """The header block of a PGP/MIME message shaped like Delta Chat's (each line CRLF)."""
    ctype = f'multipart/encrypted{protocol or ""};\r\n boundary="{boundary}"'
    return (
        f"From: <{sender}>\r\n"
        "Date: Sat, 21 Nov 2026 05:41:21 +0000\r\n"
        f"Message-ID: <{message_id}>\r\n"
        "MIME-Version: 1.0\r\n"
        'To: "hidden-recipients": ;\r\n'
        "Subject: [...]\r\n"
        f"{extra_headers}"
        f"Content-Type: {ctype}\r\n"
    )


def encrypted_body(armored: str, boundary: str = BOUNDARY) -> str:
    """The body of that message: the version part and the armored part."""
    return (
        "\r\n"
        f"--{boundary}\r\n"
        'Content-Type: application/pgp-encrypted; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: 7bit\r\n"
        "\r\n"
        "Version: 1\r\n"
        "\r\n"
        f"--{boundary}\r\n"
        'Content-Type: application/octet-stream; name="encrypted.asc"; charset="utf-8"\r\n'
        "Content-Description: OpenPGP encrypted message\r\n"
        'Content-Disposition: inline; filename="encrypted.asc";\r\n'
        "Content-Transfer-Encoding: 7bit\r\n"
        "\r\n"
        f"{armored}"
        "\r\n"
        f"--{boundary}--\r\n"
    )


def encrypted_message(
    armored: str,
    *,
    sender: str = ALICE,
    boundary: str = BOUNDARY,
    protocol: str | None = PGP_MIME,
    extra_headers: str = "",
    message_id: str = MESSAGE_ID,
) -> bytes:
    """A PGP/MIME message shaped like Delta Chat's (CRLF throughout)."""
    head = encrypted_head(
        sender,
        boundary=boundary,
        protocol=protocol,
        extra_headers=extra_headers,
        message_id=message_id,
    )
    return (head + "\r\n" + encrypted_body(armored, boundary)).encode()


def header_fields(head: str) -> list[tuple[str, str]]:
    """(name, value) of each header of a CRLF header block; a fold stays as LF + space, the
    way Postfix hands folded headers to a milter."""
    fields: list[tuple[str, str]] = []
    for line in head.removesuffix("\r\n").split("\r\n"):
        if line[:1] in (" ", "\t"):
            name, value = fields[-1]
            fields[-1] = (name, value + "\n" + line)
        else:
            name, _, value = line.partition(":")
            fields.append((name, value.lstrip(" ")))
    return fields


def secure_join_message(
    header: str = "vc-request",
    body: str = "Secure-Join: vc-request",
    *,
    sender: str = ALICE,
    to: str = BOB,
    part_type: str = 'text/plain; charset="utf-8"',
) -> bytes:
    """A legacy cleartext Secure-Join request as Delta Chat 2.65 sends it."""
    b = "18eb06ecead8da2f_7d87d86c5a589e75_ec20a9b83d76310b"
    return (
        f"From: <{sender}>\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/mixed;\r\n boundary="{b}"\r\n'
        f"To: <{to}>\r\n"
        f"Subject: Message from {sender}\r\n"
        "Chat-Version: 1.0\r\n"
        f"Secure-Join: {header}\r\n"
        "Secure-Join-Invitenumber: GtNuRSH4EZvSFLgXiK6eTuqI\r\n"
        "\r\n\r\n"
        f"--{b}\r\n"
        f"Content-Type: {part_type}\r\n"
        "Content-Transfer-Encoding: 7bit\r\n"
        "\r\n"
        f"{body}\r\n"
        f"--{b}--\r\n"
    ).encode()


def plain_message(sender: str = ALICE, to: str = BOB, extra: str = "", body: str = "hi") -> bytes:
    return (f"From: <{sender}>\r\nTo: <{to}>\r\nSubject: hello\r\n{extra}\r\n{body}\r\n").encode()


# -- the Delta Chat samples --


@dataclass(frozen=True)
class Sample:
    """One captured message, as its client submitted it."""

    name: str  # descriptive: the file name without its number and .eml
    data: bytes  # CRLF, without the delivery headers Return-Path and Received
    sender: str  # the From address
    rcpt: str  # the recipient it was delivered to


def sample_name(path: Path) -> str:
    """`05-chat-text-alice-to-bob.eml` -> `chat-text-alice-to-bob`."""
    return path.stem.split("-", 1)[1]


def load_sample(path: Path) -> Sample:
    """As the README says: LF -> CRLF, Return-Path and Received dropped (folds included)."""
    raw = path.read_bytes()
    rcpt = re.search(rb"for <([^>]+)>", raw).group(1).decode()
    head, sep, body = raw.partition(b"\n\n")
    kept: list[bytes] = []
    skipping = False
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t"):
            if not skipping:
                kept.append(line)
            continue
        skipping = line.lower().startswith((b"return-path:", b"received:"))
        if not skipping:
            kept.append(line)
    data = (b"\n".join(kept) + sep + body).replace(b"\n", b"\r\n")
    sender = re.search(rb"^From: <?([^>\r]+)>?\r$", data, re.M).group(1).decode()
    return Sample(sample_name(path), data, sender, rcpt)


@functools.cache
def load_samples() -> dict[str, Sample]:
    """Every sample by its descriptive name (e.g. `chat-text-alice-to-bob`)."""
    paths = sorted(SAMPLES.glob("*.eml"))
    assert len(paths) == SAMPLE_COUNT, f"samples missing under {SAMPLES}"
    return {sample.name: sample for sample in map(load_sample, paths)}


def deltachat_samples() -> list[Sample]:
    """The samples Delta Chat sent: all but the swaks one."""
    return [s for s in load_samples().values() if s.name != SWAKS_SAMPLE]


def sample(name: str, sender: str, rcpt: str, message_id: str | None = None) -> bytes:
    """The sample `name` re-addressed from sender to rcpt (a `To:` with an address), with a
    new Message-ID if one is given."""
    data = load_samples()[name].data
    head, sep, body = data.partition(b"\r\n\r\n")
    fields: list[bytes] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b"\r\n" + line
        else:
            fields.append(line)
    if message_id:
        fields = [
            f"Message-ID: <{message_id}>".encode()
            if f.split(b":", 1)[0].lower() == b"message-id"
            else f
            for f in fields
        ]
    data = b"\r\n".join(fields) + sep + body
    old_from = _address(fields, b"from")
    old_to = _address(fields, b"to")
    if old_from:
        data = data.replace(old_from, sender.encode())
    if old_to:
        data = data.replace(old_to, rcpt.encode())
    return data


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


SIGNED_HEADERS = (b"from", b"to", b"subject", b"date", b"message-id", b"content-type")


def dkim_sign(
    message: bytes,
    domain: str,
    selector: str,
    key_pem: bytes,
    headers: tuple[bytes, ...] = SIGNED_HEADERS,
) -> bytes:
    """The message with a DKIM-Signature of d=domain on top (relaxed/simple, RSA-SHA256)
    over the `headers` fields. Without `from` it is a signature that does not cover From,
    which dkimpy refuses to make: built from dkimpy's own parts (`unsigned_from_field`)."""
    if b"from" not in headers:
        return unsigned_from_field(message, domain, selector, key_pem, headers) + message
    signature = dkim.sign(
        message,
        selector.encode(),
        domain.encode(),
        key_pem,
        canonicalize=(b"relaxed", b"simple"),
        include_headers=list(headers),
    )
    return signature + message


def unsigned_from_field(
    message: bytes, domain: str, selector: str, key_pem: bytes, headers: tuple[bytes, ...]
) -> bytes:
    """A valid DKIM-Signature field (CRLF-terminated) whose h= lacks From, as an attacker
    makes it: what dkim.sign does, without its refusal (RFC 6376 wants From signed)."""
    import base64
    import hashlib

    from dkim.canonicalization import CanonicalizationPolicy

    signer = dkim.DKIM(message)
    policy = CanonicalizationPolicy.from_c_value(b"relaxed/simple")
    signer.hasher = hashlib.sha256
    body_hash = base64.b64encode(hashlib.sha256(policy.canonicalize_body(signer.body)).digest())
    fields = [
        (b"v", b"1"),
        (b"a", b"rsa-sha256"),
        (b"c", b"relaxed/simple"),
        (b"d", domain.encode()),
        (b"s", selector.encode()),
        (b"h", b" : ".join(headers)),
        (b"bh", body_hash),
        (b"b", b"0" * 60),
    ]
    key = dkim.crypto.parse_pem_private_key(key_pem)
    value = signer.gen_header(fields, headers, policy, b"DKIM-Signature", key)
    return b"DKIM-Signature: " + value


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
