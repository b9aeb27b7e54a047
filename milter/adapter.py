"""The libmilter side: one `ChatmailMilter` per SMTP connection gathers, `policy` decides.

Three roles, told apart by the session alone: an authenticated submission (`{auth_authen}`
set) gets the outgoing policy and is DKIM-signed; mail Postfix makes itself (`{daemon_name}`
is `chatmail-internal`, the null sender: bounces) is only signed; everything else is incoming
and needs a valid aligned DKIM signature (`dkimpolicy`) before the encryption policy.

Only the callbacks the policy needs are defined (CONNECT, MAIL FROM, RCPT TO, headers, body,
end of message; abort/close for cleanup), so pymilter negotiates the others away; CONNECT,
RCPT TO and the headers are no-reply steps (Postfix does not wait for them). CONNECT gives the
client's IP address, kept for the connection only (never logged): a From address literal of
incoming mail must be it (`dkimpolicy`). Any exception in a callback
becomes `451 4.3.0` with the traceback logged, at once or, in a no-reply step, at the next
step with a reply: never an accept.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import Milter

from . import dkimpolicy, mime, policy
from .dkimsign import Signer
from .dkimverify import Verifier
from .metrics import MilterMetrics
from .ratelimit import RateLimiter
from .spool import Spool

log = logging.getLogger("chatmail.milter")

INTERNAL_DAEMON = "chatmail-internal"  # master.cf: cleanup -o milter_macro_daemon_name=...


@dataclass
class Service:
    """What all connections share: limits, the rate limiter and the recipient lookup."""

    limiter: RateLimiter
    enforces_encryption: Callable[[str], bool]
    max_message_size: int
    spool_threshold: int
    spool_dir: str | None = None
    mail_domain: str = ""
    signer: Signer | None = None  # None: nothing is signed ([dkim] sign = no)
    verifier: Verifier | None = None  # None: incoming DKIM not checked ([dkim] verify = no)
    metrics: MilterMetrics | None = None  # None: no metrics ([chatmail] metrics_dir empty)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


_ADDRESS_LITERAL = re.compile(r"@\[[^\]]*\]?")


def _loggable(address: str | None) -> str | None:
    """An address for the debug log: an address literal's IP replaced (IPs are never logged)."""
    return None if address is None else _ADDRESS_LITERAL.sub("@[address literal]", address)


def client_address(family: int, hostaddr: object) -> dkimpolicy.IPAddress | None:
    """The IP address libmilter's connect callback reports (`(ip, port, ...)` for AF_INET and
    AF_INET6, possibly `IPv6:`-prefixed), or None (a unix socket, nothing usable)."""
    if family not in (socket.AF_INET, socket.AF_INET6):
        return None
    text = hostaddr[0] if isinstance(hostaddr, tuple) and hostaddr else hostaddr
    if not isinstance(text, str):
        return None
    if text[:5].lower() == "ipv6:":
        text = text[5:]
    try:
        return ipaddress.ip_address(text.partition("%")[0])  # no zone index
    except ValueError:
        return None


def _reply_text(text: str) -> str:
    """SMTP reply text: printable ASCII, '%' doubled as libmilter requires."""
    clean = "".join(c if " " <= c <= "~" else "?" for c in text)
    return clean.replace("%", "%%")


def _guarded(*, starts_message: bool = False) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Turn any exception in a callback into a logged 451 4.3.0 temporary failure, and so a
    failure remembered by a no-reply step (`_deferred`), unless the callback `starts_message`
    (MAIL FROM begins a new one)."""

    def decorate(method: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(method)
        def wrapper(self: ChatmailMilter, *args: Any) -> int:
            try:
                if self.failed and not starts_message:
                    raise RuntimeError("an earlier callback of this message failed")
                return method(self, *args)
            except Exception:
                log.exception("internal error in %s; answering 451 4.3.0", method.__name__)
                try:
                    self._refuse(policy.refuse(policy.INTERNAL_ERROR, "internal error"))
                except Exception:
                    log.exception("could not set the 451 reply")
                self._reset()
                return Milter.TEMPFAIL

        return wrapper

    return decorate


def _deferred(method: Callable[..., int]) -> Callable[..., int]:
    """For callbacks Postfix does not wait on (@noreply): remember an exception, answer it
    with 451 at the next callback that has a reply (body or end of message)."""

    @functools.wraps(method)
    def wrapper(self: ChatmailMilter, *args: Any) -> int:
        try:
            method(self, *args)
        except Exception:
            log.exception("internal error in %s; answering 451 4.3.0", method.__name__)
            self.failed = True
        return Milter.CONTINUE

    return wrapper


@Milter.header_leading_space
class ChatmailMilter(Milter.Base):
    """One SMTP connection as seen by the milter (header values with their leading space)."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.spool: Spool | None = None
        self.client: dkimpolicy.IPAddress | None = None  # for the connection, never logged
        self._reset()

    @Milter.noreply
    def connect(self, hostname: str, family: int, hostaddr: object) -> int:
        self.client = client_address(family, hostaddr)
        return Milter.CONTINUE

    def _reset(self) -> None:
        self.failed = False
        if self.spool is not None:
            self.spool.close()
        self.spool = None
        self.mail_from = ""
        self.login: str | None = None
        self.internal = False
        self.rcpts: list[str] = []
        self.headers: mime.Headers = []
        self.raw_headers: list[bytes] = []
        self.size = 0

    def _queue_id(self) -> str:
        try:
            return self.getsymval("i") or "NOQUEUE"
        except Exception:
            return "NOQUEUE"

    def _refuse(self, verdict: policy.Verdict) -> int:
        self.setreply(verdict.code, verdict.xcode, _reply_text(verdict.text))
        if self.service.metrics is not None:
            self.service.metrics.verdict(verdict)
        log.info(
            "%s: %s %s %s: %s",
            self._queue_id(),
            verdict.action,
            verdict.code,
            verdict.xcode,
            verdict.reason,
        )
        return Milter.TEMPFAIL if verdict.action == policy.TEMPFAIL_ACTION else Milter.REJECT

    @Milter.decode("bytes")
    @_guarded(starts_message=True)
    def envfrom(self, mail_from: bytes | str, *params: bytes | str) -> int:
        self._reset()
        self.mail_from = mime.envelope_address(_text(mail_from))
        login = self.getsymval("{auth_authen}")
        self.login = _text(login) if login else None
        daemon = self.getsymval("{daemon_name}")
        self.internal = self.login is None and daemon == INTERNAL_DAEMON and not self.mail_from
        self.spool = Spool(self.service.spool_threshold, self.service.spool_dir)
        log.debug(
            "mail from %r login %r internal %s",
            _loggable(self.mail_from),
            _loggable(self.login),
            self.internal,
        )
        if self.login is None:
            return Milter.CONTINUE
        if not self.service.limiter.allow(self.mail_from):
            return self._refuse(
                policy.refuse(policy.RATE_LIMITED, "rate limit", addr=f"<{self.mail_from}>")
            )
        mismatch = policy.check_login(self.mail_from, self.login)
        if mismatch is not None:
            return self._refuse(mismatch)
        return Milter.CONTINUE

    @Milter.noreply
    @Milter.decode("bytes")
    @_deferred
    def envrcpt(self, rcpt: bytes | str, *params: bytes | str) -> int:
        address = mime.envelope_address(_text(rcpt))
        log.debug("rcpt to %r", _loggable(address))
        self.rcpts.append(address)
        return Milter.CONTINUE

    def _grow(self, count: int) -> int | None:
        """Count body bytes; the 552 reply once the message (headers too) is too big."""
        self.size += count
        if self.size > self.service.max_message_size:
            return self._refuse(policy.refuse(policy.TOO_BIG, "message too big"))
        return None

    @Milter.noreply
    @Milter.decode("bytes")
    @_deferred
    def header(self, name: str, value: bytes | str) -> int:
        raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")
        self.size += len(name) + len(raw) + 4  # checked against the limit at the body
        lines = raw.replace(b"\r\n", b"\n")
        self.headers.append((name.lower(), _text(lines.replace(b"\n", b"")).strip(" \t")))
        # As received, for DKIM: Postfix folds with LF; with P_HDR_LEADSPC the space after the
        # colon is part of the value.
        space = b"" if self._protocol & Milter.P_HDR_LEADSPC else b" "
        self.raw_headers.append(name.encode("ascii", "replace") + b":" + space + lines)
        return Milter.CONTINUE

    @_guarded()
    def body(self, chunk: bytes) -> int:
        too_big = self._grow(len(chunk))
        if too_big is not None:
            return too_big
        assert self.spool is not None
        self.spool.write(chunk)
        return Milter.CONTINUE

    @_guarded()
    def eom(self) -> int:
        assert self.spool is not None
        try:
            too_big = self._grow(0)  # headers alone may exceed the limit (empty body)
            if too_big is not None:
                return too_big
            msg = mime.Message(self.headers, self.spool.view())
            verdict = self._decide(msg)
            if not verdict.accepted:
                del msg
                return self._refuse(verdict)
            if self.login is not None or self.internal:
                self._sign(msg)
            del msg
            if verdict.chgfrom is not None:
                self.chgfrom(verdict.chgfrom)
            if self.service.metrics is not None:
                self.service.metrics.verdict(verdict)
            if log.isEnabledFor(logging.DEBUG):  # _queue_id() asks libmilter: not per message
                log.debug("%s: accept: %s", self._queue_id(), verdict.reason)
            return Milter.ACCEPT
        finally:
            self._reset()

    def _decide(self, msg: mime.Message) -> policy.Verdict:
        """The verdict of this message's role (see the module docstring)."""
        if self.internal:
            return policy.accept("generated by Postfix")
        env = policy.Envelope(self.mail_from, tuple(self.rcpts), self.login)
        if env.incoming and self.service.verifier is not None:
            dkim_verdict = self.service.verifier.verdict(self._whole(msg), msg.headers, self.client)
            if not dkim_verdict.accepted:
                return dkim_verdict
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s: DKIM: %s", self._queue_id(), dkim_verdict.reason)
        return policy.decide(msg, env, self.service.enforces_encryption)

    def _whole(self, msg: mime.Message) -> bytes:
        """The message as received (header fields as Postfix sent them, CRLF, the body)."""
        lines = b"".join(h.replace(b"\n", b"\r\n") + b"\r\n" for h in self.raw_headers)
        return lines + b"\r\n" + bytes(msg.body)

    def _sign(self, msg: mime.Message) -> None:
        """Add a DKIM-Signature at the top if signing is on and the From domain is ours."""
        if self.service.signer is None:
            return
        sender = dkimpolicy.from_domain(msg.headers)
        if sender.literal or sender.domain != self.service.mail_domain.lower():
            return
        value = self.service.signer.sign(self._whole(msg))
        if self.service.metrics is not None:
            self.service.metrics.signed.inc()
        if log.isEnabledFor(logging.DEBUG):  # what the receiver verifies (delivery strips it)
            unfolded = value.replace(b"\n", b"").decode("ascii")
            log.debug("%s: signed: DKIM-Signature:%s", self._queue_id(), unfolded)
        if not self._protocol & Milter.P_HDR_LEADSPC:
            value = value.lstrip(b" ")
        self.addheader("DKIM-Signature", value.decode("ascii"), 0)

    def abort(self) -> int:
        self._reset()
        return Milter.CONTINUE

    def close(self) -> int:
        self._reset()
        return Milter.CONTINUE
