"""The decisions of chatmail-status (pure): each rule, the overall state and exit status,
and the rendering."""

from __future__ import annotations

import json

import pytest
from chatmail_services.status import rules
from chatmail_services.status.cli import guarded, permitted
from chatmail_services.status.model import Check, State, exit_code, not_readable, overall
from chatmail_services.status.render import as_json, as_text
from hypothesis import given
from hypothesis import strategies as st

from chatmail_services.layout import DAY

LOADED = {"LoadState": "loaded"}


def _props(active: str, **more: str) -> dict[str, str]:
    return {**LOADED, "ActiveState": active, **more}


@pytest.mark.parametrize(
    ("kind", "props", "state"),
    [
        (rules.SOCKET, _props("active"), State.OK),
        (rules.SOCKET, _props("inactive"), State.DEGRADED),
        (rules.SOCKET, _props("failed", Result="resources"), State.BROKEN),
        (rules.ON_DEMAND, _props("inactive"), State.OK),
        (rules.ON_DEMAND, _props("active"), State.OK),
        (rules.ON_DEMAND, _props("failed", Result="exit-code"), State.BROKEN),
        (rules.TIMER, _props("inactive"), State.DEGRADED),
        (rules.DAEMON, _props("inactive"), State.BROKEN),
        (rules.DAEMON, _props("active"), State.OK),
        (rules.DAEMON, {"LoadState": "not-found", "ActiveState": "inactive"}, State.BROKEN),
        (rules.SOCKET, {}, State.BROKEN),
    ],
)
def test_unit_states(kind, props, state):
    assert rules.unit_state(kind, props)[0] is state


def _all(active: str = "active") -> dict[str, dict[str, str]]:
    return {unit: _props(active) for unit in rules.SHOWN}


def test_all_units_up_is_ok():
    check = rules.judge_units(_all(), {})
    assert check.state is State.OK
    assert check.text == f"{len(rules.UNITS) + 1} units active or idle"


def test_postfix_is_its_instance_where_postfix_service_is_a_wrapper():
    debian12 = _all()
    debian12["postfix.service"] = _props("active", SubState="exited")
    debian12["postfix@-.service"] = _props("failed", Result="exit-code")
    check = rules.judge_units(debian12, {})
    assert check.state is State.BROKEN and check.text.startswith("postfix@-.service failed")
    debian13 = _all()
    debian13["postfix.service"] = _props("active", SubState="running")
    debian13["postfix@-.service"] = _props("inactive")
    assert rules.judge_units(debian13, {}).state is State.OK
    debian13["postfix.service"] = _props("inactive", SubState="dead")
    check = rules.judge_units(debian13, {})
    assert check.state is State.BROKEN and check.text == "postfix.service stopped (inactive)"


def test_a_stopped_socket_is_degraded_and_named_with_its_last_error():
    props = _all()
    props["chatmail-auth.socket"] = _props("inactive")
    check = rules.judge_units(props, {"chatmail-auth.socket": "Stopped listening."})
    assert check.state is State.DEGRADED
    assert check.text == "chatmail-auth.socket stopped (inactive): Stopped listening."
    assert check.data["chatmail-auth.socket"] == "inactive"


def test_a_failed_service_is_broken():
    props = _all()
    props["chatmail-milter.service"] = _props("failed", Result="exit-code")
    check = rules.judge_units(props, {})
    assert check.state is State.BROKEN
    assert "chatmail-milter.service failed (exit-code)" in check.text


def test_certificate_days():
    now = 1_000_000_000.0
    assert rules.judge_certificate(now + 90 * DAY, now).state is State.OK
    assert rules.judge_certificate(now + 90 * DAY, now).data == {"days_left": 90}
    assert rules.judge_certificate(now + 13 * DAY, now).state is State.DEGRADED
    assert rules.judge_certificate(now + 14 * DAY, now).state is State.OK
    expired = rules.judge_certificate(now - 3 * DAY, now)
    assert expired.state is State.BROKEN and expired.text == "expired 3 days ago"
    assert rules.judge_certificate(now, now).state is State.BROKEN


def test_postfix_queue():
    assert rules.judge_postfix_queue(5, 999).state is State.OK
    check = rules.judge_postfix_queue(0, rules.DEFERRED_DEGRADED)
    assert check.state is State.DEGRADED and check.data == {"active": 0, "deferred": 1000}


def test_notify_queue_full_or_stale_or_damaged_is_degraded():
    assert rules.judge_notify_queue(0, None, 0, 10, 100).state is State.OK
    assert rules.judge_notify_queue(9, 100, 0, 10, 100).state is State.OK
    assert rules.judge_notify_queue(10, 5, 0, 10, 100).state is State.DEGRADED
    assert rules.judge_notify_queue(1, 101, 0, 10, 100).state is State.DEGRADED
    assert rules.judge_notify_queue(1, 1, 1, 10, 100).state is State.DEGRADED


def test_disk():
    gib = 1024**3
    assert rules.judge_disk(5 * gib, 900, 1000, gib, None).state is State.OK
    refused = rules.judge_disk(gib // 2, 900, 1000, gib, "too little free disk")
    assert refused.state is State.DEGRADED
    assert refused.text.endswith("account creation refused: too little free disk")
    assert rules.judge_disk(5 * gib, 40, 1000, gib, None).state is State.DEGRADED
    assert rules.judge_disk(0, 900, 1000, 0, None).state is State.BROKEN
    assert rules.judge_disk(gib, 0, 1000, 0, None).state is State.BROKEN
    # file systems without inode counts (btrfs: f_files 0) are judged on space alone
    assert rules.judge_disk(5 * gib, 0, 0, gib, None).state is State.OK


def test_dns():
    ok = [("chat.example A", True, "ok"), ("chat.example CAA", False, "missing")]
    check = rules.judge_dns(ok)
    assert check.state is State.OK and "1 recommended missing" in check.text
    bad = rules.judge_dns([*ok, ("chat.example MX", True, "different")])
    assert bad.state is State.DEGRADED and bad.text == "wrong or missing: chat.example MX"
    error = rules.judge_dns([("chat.example MX", True, "error")])
    assert error.state is State.DEGRADED and error.text == "look-up failed for 1 of 1 records"
    many = rules.judge_dns([(f"r{n} TXT", True, "missing") for n in range(5)])
    assert many.text == "wrong or missing: r0 TXT, r1 TXT, r2 TXT and 2 more"
    assert many.data["failed"] == [f"r{n} TXT" for n in range(5)]


SUMMARY = {"accounts_removed": 2, "messages_removed": 30, "bytes_removed": 4096}


def test_reaper():
    now = 2_000_000_000.0
    success = {"Result": "success"}
    assert rules.judge_reaper(success, None, None, now).text == "not run yet"
    recent = rules.judge_reaper(success, now - 3600, SUMMARY, now)
    assert recent.state is State.OK
    assert recent.text == "last run 60 min ago: removed 2 accounts, 30 messages (4.0 KiB)"
    old = rules.judge_reaper(success, now - 2 * DAY - 1, None, now)
    assert old.state is State.DEGRADED and "not run for two days" in old.text
    failed = rules.judge_reaper({"Result": "exit-code"}, now - 60, None, now)
    assert failed.state is State.DEGRADED and "failed (exit-code)" in failed.text


STATES = st.sampled_from(list(State))
CHECKS = st.lists(st.builds(Check, st.sampled_from(["a", "b", "c"]), STATES, st.text()))


@given(CHECKS)
def test_the_overall_state_is_the_worst_known_one(checks):
    state = overall(checks)
    known = [c.state for c in checks if c.state is not State.UNKNOWN]
    assert state is (max(known) if known else State.OK)
    assert exit_code(state) == {State.OK: 0, State.DEGRADED: 1, State.BROKEN: 2}[state]


@given(CHECKS)
def test_the_json_report_parses_and_agrees_with_the_text(checks):
    report = json.loads(as_json(checks))
    assert report["state"] == overall(checks).label
    assert [(c["name"], c["state"], c["text"]) for c in report["checks"]] == [
        (c.name, c.state.label, c.text) for c in checks
    ]
    text = as_text(checks)
    assert text.splitlines()[0] == f"chatmail relay: {overall(checks).label}"
    assert len(text.splitlines()) == len(checks) + 1


def test_not_readable_is_unknown_only_for_a_caller_without_root():
    denied = PermissionError(13, "Permission denied")
    assert not_readable("x", False, "/q", denied).state is State.UNKNOWN
    assert not_readable("x", True, "/q", denied).state is State.DEGRADED
    assert not_readable("x", False, "/q", OSError(5, "I/O error")).state is State.DEGRADED


def test_a_check_that_raises_is_degraded_never_ok():
    def boom() -> Check:
        raise RuntimeError("parse error near a@b.example from 192.0.2.9")

    check = guarded("units", boom)
    assert check.state is State.DEGRADED
    assert check.text == "check failed: RuntimeError: parse error near <address> from <ip>"


def test_who_may_run_it():
    assert permitted(0, [], None)
    assert permitted(1000, [5, 999], 999)
    assert not permitted(1000, [5], 999)
    assert not permitted(1000, [5], None)
