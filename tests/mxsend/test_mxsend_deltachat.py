"""Real Delta Chat accounts on gamma.test and delta.test, which have no port 25: Secure-Join
and chat across them over HTTPS alone (chatmail-mxsend posting to the other's /mxdeliv)."""

from __future__ import annotations

import pytest
from harness.deltachat import deltachat_core, verify_and_chat

pytestmark = pytest.mark.e2e

BY_HTTPS = "status=sent (250 2.0.0 Ok: delivered over HTTPS)"


def test_secure_join_and_chat_over_https_alone(relays, tmp_path):
    gamma, delta = relays.gamma, relays.delta
    with deltachat_core(tmp_path / "accounts") as core:
        accounts = []
        for relay in (gamma, delta):
            credentials = relay.new_credentials()
            account = core.add_account()
            account.add_or_update_transport(
                relay.deltachat_transport(credentials["email"], credentials["password"])
            )
            account.bring_online()
            accounts.append(account)
        verify_and_chat(*accounts, "hello gamma, from delta", "hello delta, from gamma")
    for sending, receiving in ((gamma, delta), (delta, gamma)):
        lines = [
            line
            for line in sending.postfix.log_text().splitlines()
            if f"@{receiving.domain}>" in line and "status=" in line
        ]
        # the join takes two messages each way, the chat one more: all over HTTPS
        assert sum(BY_HTTPS in line for line in lines) >= 3, lines
        assert not any("postfix/smtp[" in line for line in lines), lines
