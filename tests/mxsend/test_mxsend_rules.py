"""The pure rules of chatmail-mxsend: MX order, recipient groups, TLS policy, the skip."""

from __future__ import annotations

import pytest
from chatmail_services.mxsend import routing, tlspolicy
from chatmail_services.mxsend.skip import SkipTable
from chatmail_services.mxsend.tlspolicy import Tls
from hypothesis import given
from hypothesis import strategies as st

from chatmail_services.config import parse_config
from chatmail_services.mailconfig import MXSEND_TRANSPORT, postfix_values

host = st.from_regex(r"[a-z]{1,8}(\.[a-z]{1,8}){0,2}", fullmatch=True)


@given(st.lists(st.tuples(st.integers(0, 65535), host), min_size=1, max_size=8))
def test_mx_hosts_by_preference_ties_in_dns_order(records):
    texts = [f"{pref} {name}." for pref, name in records]
    order = sorted(range(len(records)), key=lambda i: (records[i][0], i))
    assert routing.order_mx(texts) == [records[i][1] for i in order]


def test_a_null_mx_is_no_route():
    with pytest.raises(routing.NoRoute):
        routing.order_mx(["0 ."])


@given(st.lists(st.tuples(st.from_regex(r"[a-z]{1,5}", fullmatch=True), host), max_size=12))
def test_recipients_are_grouped_by_domain_in_order(pairs):
    rcpts = [f"{local}@{domain}" for local, domain in pairs]
    groups = routing.group_by_domain(rcpts)
    assert [r for group in groups.values() for r in group] == sorted(
        rcpts, key=lambda r: list(groups).index(routing.domain_of(r))
    )
    assert all(routing.domain_of(r) == d for d, group in groups.items() for r in group)


POLICY = """
# exceptions
classic.example   encrypt
cleartext.example none
pinned.example    fingerprint match=AA:BB
.corp.example     may
strict.example    secure match=nexthop
"""


@pytest.mark.parametrize(
    ("domain", "tls"),
    [
        ("relay.example", Tls.VERIFY),
        ("classic.example", Tls.UNVERIFIED),
        ("CLASSIC.example", Tls.UNVERIFIED),
        ("cleartext.example", Tls.NO_HTTPS),
        ("pinned.example", Tls.NO_HTTPS),
        ("mail.corp.example", Tls.UNVERIFIED),
        ("corp.example", Tls.VERIFY),
        ("strict.example", Tls.VERIFY),
    ],
)
def test_tls_policy_exceptions_apply_to_https_as_to_smtp(domain, tls):
    assert tlspolicy.tls_for(tlspolicy.parse_policy(POLICY), domain) is tls


@given(st.text(max_size=300), host)
def test_any_policy_text_gives_a_verdict(text, domain):
    assert tlspolicy.tls_for(tlspolicy.parse_policy(text), domain) in set(Tls)


def test_a_missing_policy_file_verifies_everything(tmp_path):
    assert tlspolicy.load_policy(str(tmp_path / "none")) == {}


def test_the_skip_lasts_its_seconds_by_the_clock():
    now = [1000.0]
    skips = SkipTable(1800, clock=lambda: now[0])
    skips.skip("mx.example")
    assert skips.skipped("mx.example") and not skips.skipped("other.example")
    now[0] += 1799
    assert skips.skipped("mx.example")
    now[0] += 1
    assert not skips.skipped("mx.example")
    off = SkipTable(0)
    off.skip("mx.example")
    assert not off.skipped("mx.example")


@pytest.mark.parametrize(("https", "transport"), [("yes", MXSEND_TRANSPORT), ("no", "smtp")])
def test_https_switches_postfix_default_transport(https, transport):
    config = parse_config(
        f"[chatmail]\nmail_domain = chat.example\n[federation]\nhttps = {https}\n"
    )
    assert postfix_values(config)["default_transport"] == transport


# -- the best MX only: a host that cannot be reached is SMTP's turn, not the next MX's --


def _sender(monkeypatch, tmp_path, outcome):
    """A Sender for `relay.example` (MX mx1, mx2) whose POSTs give `outcome` (a status, or
    PostFailed), recording the hosts posted to and what was handed back to SMTP."""
    from chatmail_services.mxsend import deliver, https

    monkeypatch.setattr(
        deliver, "mx_hosts", lambda resolver, domain: ["mx1.example", "mx2.example"]
    )
    monkeypatch.setattr(deliver, "host_addresses", lambda resolver, host: ["192.0.2.1"])
    posted: list[str] = []
    returned: list[list[str]] = []

    def post(host, address, headers, body, tls, *, port, timeout):
        posted.append(host)
        if outcome is https.PostFailed:
            raise https.PostFailed("connect: TimeoutError")
        return outcome

    def hand_back(socket, mail_from, rcpts, message, smtputf8):
        returned.append(list(rcpts))
        return ["250 2.0.0 Ok: queued"] * len(rcpts)

    settings = deliver.Settings(
        https=True, return_socket="unused", ca_file="", tls_policy=str(tmp_path / "none")
    )
    skips = SkipTable(1800, clock=lambda: 0.0)
    sender = deliver.Sender(settings, None, skips, post=post, hand_back=hand_back)
    return sender, posted, returned, skips


@pytest.mark.parametrize("outcome", ["PostFailed", 500, 400])
def test_an_unreachable_or_refusing_best_mx_goes_to_smtp_without_trying_the_next(
    monkeypatch, tmp_path, outcome
):
    from chatmail_services.mxsend import https
    from chatmail_services.mxsend.lmtp import Transaction

    outcome = https.PostFailed if outcome == "PostFailed" else outcome
    sender, posted, returned, skips = _sender(monkeypatch, tmp_path, outcome)
    replies = sender.deliver(Transaction("a@here.example", (), ["b@relay.example"]), b"x\r\n")
    assert posted == ["mx1.example"]
    assert returned == [["b@relay.example"]] and replies == ["250 2.0.0 Ok: queued"]
    # the next message skips HTTPS to that host and goes to SMTP at once
    sender.deliver(Transaction("a@here.example", (), ["c@relay.example"]), b"x\r\n")
    assert posted == ["mx1.example"] and skips.skipped("mx1.example")


def test_a_2xx_from_the_best_mx_delivers(monkeypatch, tmp_path):
    from chatmail_services.mxsend.deliver import DELIVERED
    from chatmail_services.mxsend.lmtp import Transaction

    sender, posted, returned, _ = _sender(monkeypatch, tmp_path, 200)
    replies = sender.deliver(Transaction("", (), ["b@relay.example"]), b"x\r\n")
    assert posted == ["mx1.example"] and returned == [] and replies == [DELIVERED]


def test_connecting_waits_at_most_the_connect_timeout(monkeypatch):
    """A port 443 that drops packets costs CONNECT_TIMEOUT, not the request's 60 s: a loopback
    listener whose backlog is full drops the SYN as such a firewall does."""
    import socket
    import ssl
    import time

    from chatmail_services.mxsend import https, wire

    monkeypatch.setattr(wire, "CONNECT_TIMEOUT", 0.5)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        try:
            for _ in range(4):  # fill the accept queue (its length is backlog + 1)
                filler = socket.socket()
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", port))
                fillers.append(filler)
            time.sleep(0.2)
            started = time.monotonic()
            with pytest.raises(https.PostFailed, match="connect"):
                https.connect("h.example", "127.0.0.1", port, ssl.create_default_context(), 60)
            assert time.monotonic() - started < 5
        finally:
            for filler in fillers:
                filler.close()
