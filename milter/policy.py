"""The encryption policy: one pure function from message, envelope and login to a verdict.

No libmilter, no sockets, no files: `decide` gets the parsed message, the envelope and a
callable telling whether a recipient enforces encryption. See docs/milter.md and
spec/encryption-policy.md for the rules.
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


def encryption_problem(msg: mime.Message, *, incoming: bool) -> str | None:
    """Why `msg` is not PGP/MIME encrypted (RFC 3156, byte-exact), or None if it is."""
    if not msg.crlf:
        return "line endings are not CRLF"
    ctype = mime.content_type(msg.headers)
    if ctype is None:
        return "missing or malformed Content-Type"
    if ctype.type != "multipart/encrypted":
        return f"top level is {ctype.type}, not multipart/encrypted"
    if ctype.params.get("protocol", "").lower() != "application/pgp-encrypted":
        return "protocol parameter is not application/pgp-encrypted"
    parts = mime.split_multipart(msg.body, ctype.params.get("boundary", ""))
    if parts is None:
        return "broken multipart structure"
    if len(parts) != 2:
        return f"{len(parts)} body parts instead of 2"
    split = [mime.split_part(msg.body[start:end]) for start, end in parts]
    if split[0] is None or split[1] is None:
        return "malformed body part headers"
    (head1, body1), (head2, body2) = split
    type1, type2 = mime.content_type(head1), mime.content_type(head2)
    if type1 is None or type1.type != "application/pgp-encrypted":
        return "first part is not application/pgp-encrypted"
    control = mime.transfer_decode(head1, body1)
    if control is None or control.strip() != b"Version: 1":
        return "first part is not Version: 1"
    if type2 is None or type2.type != "application/octet-stream":
        return "second part is not application/octet-stream"
    armor = mime.transfer_decode(head2, body2)
    if armor is None:
        return "second part has an unknown transfer encoding"
    try:
        openpgp.check_armored(armor, incoming=incoming)
    except openpgp.NotEncrypted as exc:
        return str(exc)
    return None


def is_secure_join_request(msg: mime.Message) -> bool:
    """A cleartext Secure-Join vc-request/vg-request whose body matches its header."""
    values = msg.get_all("secure-join")
    if len(values) != 1 or values[0].strip() not in SECURE_JOIN_REQUESTS or not msg.crlf:
        return False
    kind = values[0].strip()
    ctype = mime.content_type(msg.headers)
    if ctype is None or ctype.type != "multipart/mixed":
        return False
    parts = mime.split_multipart(msg.body, ctype.params.get("boundary", ""))
    if parts is None or len(parts) != 1:
        return False
    split = mime.split_part(msg.body[parts[0][0] : parts[0][1]])
    if split is None:
        return False
    headers, body = split
    part_type = mime.content_type(headers)
    if part_type is None or part_type.type != "text/plain":
        return False
    text = mime.transfer_decode(headers, body)
    return text is not None and text.strip().lower() == b"secure-join: " + kind.encode()


def from_address(msg: mime.Message) -> str | None:
    """The address of the single From header, or None if none, several or unparseable."""
    values = msg.get_all("from")
    return mime.single_address(values[0]) if len(values) == 1 else None


def is_setup_message_to_self(msg: mime.Message, env: Envelope) -> bool:
    """An Autocrypt Setup Message a user sends to their own address."""
    sender = from_address(msg)
    subjects = msg.get_all("subject")
    ctype = mime.content_type(msg.headers)
    return (
        sender is not None
        and len(env.rcpts) == 1
        and env.rcpts[0].lower() == sender.lower()
        and subjects == [SETUP_SUBJECT]
        and ctype is not None
        and ctype.type == "multipart/mixed"
    )


def is_delivery_report(msg: mime.Message) -> bool:
    """A cleartext bounce: Auto-Submitted (not `no`), From mailer-daemon, multipart/report."""
    auto = msg.get_all("auto-submitted")
    if len(auto) != 1 or auto[0].strip().lower() in ("", "no"):
        return False
    sender = from_address(msg)
    if sender is None or sender.rpartition("@")[0].lower() != "mailer-daemon":
        return False
    ctype = mime.content_type(msg.headers)
    return ctype is not None and ctype.type == "multipart/report"


def _incoming_accept(msg: mime.Message, env: Envelope, reason: str) -> Verdict:
    """Accept incoming mail; reset the envelope sender if it differs from the From address."""
    sender = from_address(msg)
    if env.mail_from and (sender is None or sender.lower() != env.mail_from.lower()):
        return accept(reason + "; envelope sender reset", chgfrom="<>")
    return accept(reason)


def decide(
    msg: mime.Message,
    env: Envelope,
    enforces_encryption: Callable[[str], bool],
) -> Verdict:
    """The policy of spec/encryption-policy.md for one message (rate limiting excluded)."""
    if env.incoming:
        problem = encryption_problem(msg, incoming=True)
        if problem is None:
            return _incoming_accept(msg, env, "encrypted")
        if is_secure_join_request(msg):
            return _incoming_accept(msg, env, "Secure-Join request")
        if is_delivery_report(msg):
            return _incoming_accept(msg, env, "delivery report")
        if any(enforces_encryption(rcpt) for rcpt in env.rcpts):
            return refuse(ENCRYPTION_NEEDED, f"incoming cleartext: {problem}")
        return _incoming_accept(msg, env, "cleartext to recipients not enforcing encryption")
    assert env.login is not None
    mismatch = check_login(env.mail_from, env.login)
    if mismatch is not None:
        return mismatch
    if len(msg.get_all("from")) != 1:
        return refuse(FROM_MISMATCH, f"{len(msg.get_all('from'))} From headers")
    sender = from_address(msg)
    if sender is None or sender.lower() != env.mail_from.lower():
        return refuse(FROM_MISMATCH, "From address differs from envelope sender")
    problem = encryption_problem(msg, incoming=False)
    if problem is None:
        return accept("encrypted")
    if is_secure_join_request(msg):
        return accept("Secure-Join request")
    if is_setup_message_to_self(msg, env):
        return accept("Autocrypt Setup Message to self")
    return refuse(ENCRYPTION_NEEDED, f"outgoing cleartext: {problem}")
