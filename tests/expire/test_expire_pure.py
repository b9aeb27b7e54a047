"""The pure rules (no file system): properties of plan_messages and the quota trim."""

from __future__ import annotations

from chatmail_services.expire.rules import (
    Message,
    Policy,
    counts_for_quota,
    expiry_rule,
    plan_messages,
    quota_trim,
)
from hypothesis import given
from hypothesis import strategies as st

DAY = 86400
NOW = 1_790_000_000

message_lists = st.lists(
    st.builds(
        Message,
        time=st.integers(NOW - 30 * DAY, NOW),
        size=st.integers(0, 30_000),
        folder=st.sampled_from(["", ".DeltaChat", ".Sent"]),
        box=st.sampled_from(["cur", "new", "tmp"]),
        name=st.text("abc0123456789", min_size=1, max_size=8),
    ),
    max_size=40,
    unique_by=lambda m: (m.folder, m.box, m.name),
)
policies = st.builds(
    Policy,
    large_size=st.sampled_from([1000, 20_000]),
    max_mailbox_size=st.sampled_from([50_000, 200_000]),
    trim_start_percent=st.just(75),
    trim_target_percent=st.sampled_from([70, 30]),
    trim_min_age=st.sampled_from([0, DAY]),
)


@given(message_lists, policies)
def test_plan_agrees_with_the_rules(messages, policy):
    plan = plan_messages(messages, NOW, policy)
    by_rule = {d.message: d.rule for d in plan}
    assert len(by_rule) == len(plan)  # nothing deleted twice
    for message in messages:
        rule = expiry_rule(message, NOW, policy)
        if rule is not None:
            assert by_rule[message] == rule
        elif message in by_rule:
            assert by_rule[message] == "quota"
    trimmed = [d.message for d in plan if d.rule == "quota"]
    assert trimmed == sorted(trimmed, key=lambda m: (m.time, m.path))  # oldest first
    assert all(NOW - m.time >= policy.trim_min_age and counts_for_quota(m) for m in trimmed)
    kept = [m for m in messages if m not in by_rule and counts_for_quota(m)]
    usage = sum(m.size for m in kept)
    if trimmed:  # it trimmed down to the target, and not one message more
        last = trimmed[-1]
        assert usage * 100 <= policy.trim_target_percent * policy.max_mailbox_size or not any(
            NOW - m.time >= policy.trim_min_age for m in kept
        )
        assert (usage + last.size) * 100 > policy.trim_target_percent * policy.max_mailbox_size


@given(message_lists, policies, st.integers(0, 40))
def test_an_interrupted_trim_resumes_to_the_same_end(messages, policy, done):
    """Deleting any prefix of a trim, then re-planning with resume=True (the marker a started
    trim leaves), deletes exactly the rest."""
    survivors = [m for m in messages if expiry_rule(m, NOW, policy) is None]
    trim = quota_trim(survivors, NOW, policy)
    if not trim:  # no trim, no marker: nothing to resume
        return
    done = min(done, len(trim))
    left = [m for m in survivors if m not in trim[:done]]
    assert quota_trim(left, NOW, policy, resume=True) == trim[done:]
