"""chatmail-mxdeliv's requests by outcome after real requests through nginx and Postfix; the
milter behind Postfix counts the same messages in its own file."""

from __future__ import annotations

from pathlib import Path

import pytest
from chatmail_services.mxdeliv.data import stuff
from chatmail_services.mxdeliv.metrics import outcome
from chatmail_services.web.http import Response
from harness.messages import new_message_id, sample
from metrics.privacy import scan_directory
from metrics.promtool import check_metrics
from metrics.wait import moved, samples, wait_for
from mxdeliv.conftest import SENDER
from mxdeliv.test_mxdeliv_relay import ENCRYPTED, encrypted, post, rcpts  # noqa: F401

pytestmark = pytest.mark.stack

REQUESTS = "chatmail_mxdeliv_requests_total"
MILTER = "chatmail_milter_messages_total"


def files(network) -> tuple[Path, Path]:
    directory = Path(network.relay.config.chatmail.metrics_dir)
    return directory / "chatmail-mxdeliv.prom", directory / "chatmail-milter.prom"


def after_a_get(network, accounts: list[str], path: Path) -> dict[str, float]:
    """The samples once a GET (405) has been counted: the service runs (socket-activated, it
    starts with its first request) and its file is current."""
    key = f'{REQUESTS}{{outcome="method_not_allowed"}}'
    start = samples(path).get(key, 0)
    assert post(network.relay, b"", accounts[:1], f"alice@{SENDER}", method="GET")[0] == 405
    return wait_for(path, lambda s: s.get(key, 0) == start + 1)


def test_refusals_are_counted_by_outcome(network, rcpts):  # noqa: F811
    relay = network.relay
    path, milter = files(network)
    before = after_a_get(network, rcpts, path)
    milter_before = wait_for(milter, lambda s: bool(s))

    message = sample(ENCRYPTED, f"alice@{SENDER}", rcpts[0], new_message_id(SENDER))
    assert post(relay, stuff(message), rcpts[:1], f"alice@{SENDER}")[0] == 400  # no DKIM
    assert post(relay, b"x\n", rcpts[:1], f"alice@{SENDER}") == (400, b"500 Invalid DATA")
    assert post(relay, b"", rcpts[:1], f"alice@{SENDER}", method="PUT")[0] == 405

    want = {f'{REQUESTS}{{outcome="refused"}}': 2, f'{REQUESTS}{{outcome="method_not_allowed"}}': 1}
    after = wait_for(path, lambda s: moved(before, s) == want)
    assert moved(before, after) == want
    dkim_missing = f'{MILTER}{{outcome="dkim_missing",code="554"}}'
    milter_after = wait_for(milter, lambda s: moved(milter_before, s) == {dkim_missing: 1})
    assert moved(milter_before, milter_after) == {dkim_missing: 1}
    result = check_metrics(path.read_text())
    assert result.returncode == 0, result.stdout + result.stderr
    assert {name: found for name, found in scan_directory(path.parent).items() if found} == {}


def test_a_delivery_is_counted(network, rcpts):  # noqa: F811
    relay = network.relay
    path, _milter = files(network)
    before = after_a_get(network, rcpts, path)
    _message_id, message = encrypted(network, rcpts[0])
    assert post(relay, stuff(message), rcpts[:1], f"alice@{SENDER}") == (200, b"250 OK")
    want = {f'{REQUESTS}{{outcome="delivered"}}': 1}
    assert moved(before, wait_for(path, lambda s: moved(before, s) == want)) == want


@pytest.mark.parametrize(
    ("status", "body", "label"),
    [
        (200, b"250 OK", "delivered"),
        (400, b"451 4.3.0 Temporary failure, try again later", "temporary"),
        (400, b"554 5.7.1 No DKIM signature found", "refused"),
        (413, b"552 Message exceeds maximum size", "too_large"),
        (405, b"Method Not Allowed", "method_not_allowed"),
        (400, b"", "other"),
        (503, b"", "other"),
    ],
)
def test_outcome_of_each_answer(status, body, label):
    assert outcome(Response(status, body, "text/plain")) == label
