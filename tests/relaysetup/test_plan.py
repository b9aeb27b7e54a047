"""The plan for any state of the files: applying it reaches the desired state, then no change;
the diff names every changed file and never shows a secret."""

from __future__ import annotations

import tempfile
from pathlib import Path

from chatmail_services.relaysetup.apply import apply_plan, read_current
from chatmail_services.relaysetup.diff import plan_diff
from chatmail_services.relaysetup.model import Desired, Part
from chatmail_services.relaysetup.plan import make_plan
from hypothesis import given
from hypothesis import strategies as st

PATHS = ("/etc/a.conf", "/etc/sub/b.conf", "/etc/c.key")
contents = st.binary(max_size=40).map(lambda b: b.replace(b"\0", b""))
modes = st.sampled_from([0o600, 0o640, 0o644])
existing = st.one_of(st.none(), st.tuples(contents, modes))
SECRET = b"TOPSECRET-"


@st.composite
def situations(draw):
    """For each path: how it is now (missing or content + mode) and how a part wants it."""
    now = {path: draw(existing) for path in PATHS}
    wanted = [
        Desired(
            path,
            draw(contents) + (SECRET if path.endswith(".key") else b""),
            draw(modes),
            keep_existing=draw(st.booleans()),
            secret=path.endswith(".key"),
        )
        for path in PATHS
    ]
    return now, wanted


def _tree(root: Path, now: dict) -> None:
    for path, state in now.items():
        if state is not None:
            file = root / path.lstrip("/")
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(state[0])
            file.chmod(state[1])


@given(situations())
def test_applying_the_plan_reaches_the_desired_state_and_a_second_plan_is_empty(situation):
    now, wanted = situation
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        _tree(root, now)
        part = Part("p", files=tuple(wanted))
        plan = make_plan([part], read_current(root), lambda desired: None)
        diff = plan_diff(plan)
        assert SECRET.decode() not in diff
        for change in plan.changes:
            assert change.desired.path in diff
        assert apply_plan(plan, root, lambda d: None, checks=False, reloads=False) == []
        for desired in wanted:
            file = root / desired.path.lstrip("/")
            if desired.keep_existing and now[desired.path] is not None:
                assert file.read_bytes() == now[desired.path][0]  # left alone
            else:
                assert file.read_bytes() == desired.content
                assert file.stat().st_mode & 0o777 == desired.mode
        again = make_plan([part], read_current(root), lambda desired: None)
        assert again.changes == ()
        assert plan_diff(again) == "chatmail-setup: nothing to change\n"
