"""The encryption policy: one pure function from message, envelope and login to a verdict.

No libmilter, no sockets, no files: `decide` gets the parsed message, the envelope and a
callable telling whether a recipient enforces encryption, parses the message's structure once
(`shape_of`) and applies the rules of docs/encryption-policy.md to it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from . import mime, openpgp

ACCEPT_ACTION, REJECT_ACTION, TEMPFAIL_ACTION = "accept", "reject", "tempfail"

ENCRYPTION_NEEDED = ("523", "5.7.10", "Encryption Needed: Invalid Unencrypted Mail")
FROM_MISMATCH = ("550", "5.7.1", "From header does not match sender")
LOGIN_MISMATCH = ("550", "5.7.1", "Sender address does not match login")
RATE_LIMITED = ("450", "4.7.1", "Too much mail from {addr}")
INTERNAL_ERROR = ("451", "4.3.0", "Internal error, please try again later")
TOO_BIG = ("552", "5.3.4", "Message size exceeds fixed limit")

SECURE_JOIN_REQUESTS = ("vc-request", "vg-request")
SETUP_SUBJECT = "Autocrypt Setup Message"


@dataclass(frozen=True)
class Verdict:
    """What to answer. `reason` is for the log and the check command: never an address."""

    action: str
    code: str = ""
    xcode: str = ""
    text: str = ""
    reason: str = ""
    chgfrom: str | None = None

    @property
    def accepted(self) -> bool:
        return self.action == ACCEPT_ACTION

    def describe(self) -> str:
        """`accept` or `reject <code> <xcode> <text>` (the check command's output)."""
        if self.accepted:
            return "accept"
        return f"reject {self.code} {self.xcode} {self.text}"


def accept(reason: str, chgfrom: str | None = None) -> Verdict:
    return Verdict(ACCEPT_ACTION, reason=reason, chgfrom=chgfrom)


def refuse(reply: tuple[str, str, str], reason: str, **fmt: str) -> Verdict:
    """A rejection (5xx) or temporary failure (4xx) with the given SMTP reply."""
    code, xcode, text = reply
    action = TEMPFAIL_ACTION if code.startswith("4") else REJECT_ACTION
    return Verdict(action, code, xcode, text.format(**fmt), reason)


@dataclass(frozen=True)
class Envelope:
    """SMTP envelope and authentication. `login` is None for unauthenticated (incoming) mail."""

    mail_from: str
    rcpts: Sequence[str] = field(default_factory=tuple)
    login: str | None = None

    @property
    def incoming(self) -> bool:
        return self.login is None


def check_login(mail_from: str, login: str) -> Verdict | None:
    """Outgoing rule 2: the envelope sender must be the SASL login; None if it is."""
    if not mail_from or mail_from.lower() != login.lower():
        return refuse(LOGIN_MISMATCH, "envelope sender differs from login")
    return None


@dataclass(frozen=True)
class Part:
    """One top-level body part: its Content-Type (None if malformed), headers and body."""

    ctype: mime.ContentType | None
    headers: mime.Headers
    body: bytes


@dataclass(frozen=True)
class Shape:
    """What the rules read of a message, parsed once (`shape_of`).

    `part_count` is the number of top-level body parts of a multipart message (None: not
    multipart, or its structure is broken); `parts` holds them when there are one or two
    (the only counts a rule accepts), an entry None when that part's headers are malformed.
    """

    crlf: bool
    ctype: mime.ContentType | None
    part_count: int | None
    parts: tuple[Part | None, ...]
    from_count: int
    sender: str | None  # the address of the single From header
    subjects: list[str]
    secure_join: list[str]
    auto_submitted: list[str]


def _part(data: bytes) -> Part | None:
    split = mime.split_part(data)
    if split is None:
        return None
    headers, body = split
    return Part(mime.content_type(headers), headers, body)


def shape_of(msg: mime.Message) -> Shape:
    """Parse the structure every rule reads: top-level type, parts, From, a few headers."""
    ctype = mime.content_type(msg.headers)
    part_count, parts = None, ()
    if ctype is not None and ctype.maintype == "multipart":
        offsets = mime.split_multipart(msg.body, ctype.params.get("boundary", ""))
        if offsets is not None:
            part_count = len(offsets)
            if part_count <= 2:
                parts = tuple(_part(msg.body[start:end]) for start, end in offsets)
    senders = msg.get_all("from")
    return Shape(
        crlf=msg.crlf,
        ctype=ctype,
        part_count=part_count,
        parts=parts,
        from_count=len(senders),
        sender=mime.single_address(senders[0]) if len(senders) == 1 else None,
        subjects=msg.get_all("subject"),
        secure_join=msg.get_all("secure-join"),
        auto_submitted=msg.get_all("auto-submitted"),
    )


def _top_type(shape: Shape) -> str | None:
    return None if shape.ctype is None else shape.ctype.type


def encryption_problem(shape: Shape, *, incoming: bool) -> str | None:
    """Why the message is not PGP/MIME encrypted (RFC 3156, byte-exact), or None if it is."""
    if not shape.crlf:
        return "line endings are not CRLF"
    ctype = shape.ctype
    if ctype is None:
        return "missing or malformed Content-Type"
    if ctype.type != "multipart/encrypted":
        return f"top level is {ctype.type}, not multipart/encrypted"
    if ctype.params.get("protocol", "").lower() != "application/pgp-encrypted":
        return "protocol parameter is not application/pgp-encrypted"
    if shape.part_count is None:
        return "broken multipart structure"
    if shape.part_count != 2:
        return f"{shape.part_count} body parts instead of 2"
    control, payload = shape.parts
    if control is None or payload is None:
        return "malformed body part headers"
    if control.ctype is None or control.ctype.type != "application/pgp-encrypted":
        return "first part is not application/pgp-encrypted"
    version = mime.transfer_decode(control.headers, control.body)
    if version is None or version.strip() != b"Version: 1":
        return "first part is not Version: 1"
    if payload.ctype is None or payload.ctype.type != "application/octet-stream":
        return "second part is not application/octet-stream"
    armor = mime.transfer_decode(payload.headers, payload.body)
    if armor is None:
        return "second part has an unknown transfer encoding"
    try:
        openpgp.check_armored(armor, incoming=incoming)
    except openpgp.NotEncrypted as exc:
        return str(exc)
    return None


def is_secure_join_request(shape: Shape) -> bool:
    """A cleartext Secure-Join vc-request/vg-request whose body matches its header."""
    values = shape.secure_join
    if len(values) != 1 or values[0].strip() not in SECURE_JOIN_REQUESTS or not shape.crlf:
        return False
    kind = values[0].strip()
    if _top_type(shape) != "multipart/mixed" or shape.part_count != 1:
        return False
    (part,) = shape.parts
    if part is None or part.ctype is None or part.ctype.type != "text/plain":
        return False
    text = mime.transfer_decode(part.headers, part.body)
    return text is not None and text.strip().lower() == b"secure-join: " + kind.encode()


def is_setup_message_to_self(shape: Shape, env: Envelope) -> bool:
    """An Autocrypt Setup Message a user sends to their own address."""
    return (
        shape.sender is not None
        and len(env.rcpts) == 1
        and env.rcpts[0].lower() == shape.sender.lower()
        and shape.subjects == [SETUP_SUBJECT]
        and _top_type(shape) == "multipart/mixed"
    )


def is_delivery_report(shape: Shape) -> bool:
    """A cleartext bounce: Auto-Submitted (not `no`), From mailer-daemon, multipart/report."""
    auto = shape.auto_submitted
    if len(auto) != 1 or auto[0].strip().lower() in ("", "no"):
        return False
    if shape.sender is None or shape.sender.rpartition("@")[0].lower() != "mailer-daemon":
        return False
    return _top_type(shape) == "multipart/report"


def _incoming_accept(shape: Shape, env: Envelope, reason: str) -> Verdict:
    """Accept incoming mail; reset the envelope sender if it differs from the From address."""
    sender = shape.sender
    if env.mail_from and (sender is None or sender.lower() != env.mail_from.lower()):
        return accept(reason + "; envelope sender reset", chgfrom="<>")
    return accept(reason)


def decide(
    msg: mime.Message,
    env: Envelope,
    enforces_encryption: Callable[[str], bool],
) -> Verdict:
    """The policy of docs/encryption-policy.md for one message (rate limiting excluded)."""
    shape = shape_of(msg)
    if env.incoming:
        problem = encryption_problem(shape, incoming=True)
        if problem is None:
            return _incoming_accept(shape, env, "encrypted")
        if is_secure_join_request(shape):
            return _incoming_accept(shape, env, "Secure-Join request")
        if is_delivery_report(shape):
            return _incoming_accept(shape, env, "delivery report")
        if any(enforces_encryption(rcpt) for rcpt in env.rcpts):
            return refuse(ENCRYPTION_NEEDED, f"incoming cleartext: {problem}")
        return _incoming_accept(shape, env, "cleartext to recipients not enforcing encryption")
    assert env.login is not None
    mismatch = check_login(env.mail_from, env.login)
    if mismatch is not None:
        return mismatch
    if shape.from_count != 1:
        return refuse(FROM_MISMATCH, f"{shape.from_count} From headers")
    if shape.sender is None or shape.sender.lower() != env.mail_from.lower():
        return refuse(FROM_MISMATCH, "From address differs from envelope sender")
    problem = encryption_problem(shape, incoming=False)
    if problem is None:
        return accept("encrypted")
    if is_secure_join_request(shape):
        return accept("Secure-Join request")
    if is_setup_message_to_self(shape, env):
        return accept("Autocrypt Setup Message to self")
    return refuse(ENCRYPTION_NEEDED, f"outgoing cleartext: {problem}")
