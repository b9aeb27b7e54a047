"""The milter's counters: every verdict by outcome, DKIM signatures made.

An outcome is a fixed word for the reply the milter gave (one table, `OUTCOMES`); the
verdict's free-text reason is never a label (it may be long, and is for the log).
"""

from __future__ import annotations

from chatmail_services.metrics import Registry

from . import dkimpolicy, policy

ACCEPTED = "accepted"
OTHER = "other"

# (code, enhanced code, the reply text up to a `{` placeholder) -> outcome label
OUTCOMES: dict[tuple[str, str, str], str] = {
    policy.ENCRYPTION_NEEDED: "encryption_needed",
    policy.FROM_MISMATCH: "from_mismatch",
    policy.LOGIN_MISMATCH: "login_mismatch",
    policy.RATE_LIMITED: "rate_limited",
    policy.INTERNAL_ERROR: "internal_error",
    policy.TOO_BIG: "too_big",
    dkimpolicy.NO_SIGNATURE: "dkim_missing",
    dkimpolicy.NO_VALID_SIGNATURE: "dkim_invalid",
    dkimpolicy.KEY_UNAVAILABLE: "dkim_lookup_failed",
    dkimpolicy.LITERAL_MISMATCH: "literal_mismatch",
}
_PREFIXES = [
    (code, xcode, text.split("{")[0], word) for (code, xcode, text), word in OUTCOMES.items()
]


def outcome(verdict: policy.Verdict) -> str:
    """The outcome label of a verdict: `accepted`, a word of `OUTCOMES`, else `other`."""
    if verdict.accepted:
        return ACCEPTED
    for code, xcode, prefix, word in _PREFIXES:
        if verdict.code == code and verdict.xcode == xcode and verdict.text.startswith(prefix):
            return word
    return OTHER


class MilterMetrics:
    """The milter's metrics in `registry`; every outcome is declared (shown as 0 at start)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.messages = registry.counter(
            "chatmail_milter_messages",
            "messages the milter answered, by outcome and SMTP reply code (250: accepted)",
            ("outcome", "code"),
        )
        self.messages.declare(ACCEPTED, "250")
        for (code, _xcode, _text), word in OUTCOMES.items():
            self.messages.declare(word, code)
        self.signed = registry.counter(
            "chatmail_milter_dkim_signatures", "DKIM signatures added to outgoing mail"
        )
        self.dkim_lookup_failures = registry.counter(
            "chatmail_milter_dkim_lookup_failures",
            "incoming messages deferred because no DKIM key lookup succeeded",
        )

    def verdict(self, verdict: policy.Verdict) -> None:
        word = outcome(verdict)
        self.messages.inc(word, verdict.code or "250")
        if word == "dkim_lookup_failed":
            self.dkim_lookup_failures.inc()
