"""chatmail-auth's counters: passdb lookups by result, logins, accounts created, creations
refused by reason, and the time a lookup takes.

Dovecot checks the password against the hash the responder returns, so a wrong password for
an existing account is invisible here (Dovecot's own auth statistics count it); a login that
succeeded is the last-login record Dovecot writes after it.
"""

from __future__ import annotations

from chatmail_services.metrics import Registry

from .accounts import Result, Status

# The refusals of `accounts.headroom_refusal` and `creation_refusal`, as a label: every one of
# them is listed (tests/auth check that none falls to "other").
HEADROOM_REASONS = {
    "account creation disabled (nocreate file exists)": "kill_switch",
    "load too high": "load",
    "too little available memory": "memory",
    "too little free disk": "disk",
    "mailboxes_dir not accessible": "disk",
}
CREDENTIAL_REASONS = {
    "local part length out of range": "invalid_address",
    "not a valid address": "invalid_address",
    "password too short": "invalid_password",
    "password too long": "invalid_password",
    "password contains NUL, TAB, CR or LF": "invalid_password",
}
REASONS = {**HEADROOM_REASONS, **CREDENTIAL_REASONS}
# Seconds: a lookup reads one small file (well below 1 ms); creation hashes (tens of ms).
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0, 5.0)


def refusal_reason(reason: str) -> str:
    """The label of a refusal text (`other` for one not in `REASONS`)."""
    return REASONS.get(reason, "other")


class AuthMetrics:
    """The responder's metrics in `registry`."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.passdb = registry.counter(
            "chatmail_auth_passdb_lookups",
            "passdb lookups (one per login attempt), by result: found, not_found (no such "
            "account and none may be made), tempfail",
            ("result",),
        )
        for result in ("found", "not_found", "tempfail"):
            self.passdb.declare(result)
        self.logins = registry.counter(
            "chatmail_auth_logins", "successful logins (the last-login records Dovecot writes)"
        )
        self.created = registry.counter("chatmail_auth_accounts_created", "accounts created")
        self.refused = registry.counter(
            "chatmail_auth_creations_refused",
            "logins of unknown addresses that created no account, by reason",
            ("reason",),
        )
        for reason in sorted(set(REASONS.values())):
            self.refused.declare(reason)
        self.latency = registry.histogram(
            "chatmail_auth_lookup_seconds",
            "time to answer a passdb or userdb lookup (account creation included)",
            LATENCY_BUCKETS,
        )

    def passdb_result(self, result: Result) -> None:
        """Count one answered passdb lookup (after creation, if there was one)."""
        if result.status is Status.FOUND:
            self.passdb.inc("found")
            if result.created:
                self.created.inc()
            return
        self.passdb.inc("tempfail" if result.status is Status.TEMPFAIL else "not_found")
        if result.reason in REASONS:  # unknown address that could not be created
            self.refused.inc(REASONS[result.reason])
