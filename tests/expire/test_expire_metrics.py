"""The reaper's metrics file: the shared renderer, the default path, the last success kept."""

from __future__ import annotations

import math
import time
from pathlib import Path

from chatmail_services.expire import report
from chatmail_services.expire.scan import Stats
from expire.relaytree import Relay
from expire.test_expire_cli import A, B, C, run_cli
from hypothesis import given
from hypothesis import strategies as st
from metrics.privacy import scan_directory
from metrics.promtool import check_metrics, parse_samples

from chatmail_services.layout import DAY

LAST_SUCCESS = "chatmail_expire_last_success_timestamp_seconds"


def test_a_full_run_writes_its_file_in_metrics_dir(config):
    relay = Relay(Path(config.chatmail.mailboxes_dir), now=int(time.time()))
    relay.account(A)
    relay.message(A, age=25 * DAY)
    relay.message(A, age=DAY)
    relay.account(B, login_days_ago=120)
    relay.message(B, age=DAY, size=300)
    relay.account(C)
    directory = Path(config.chatmail.metrics_dir)
    path = directory / "chatmail-expire.prom"

    assert run_cli(config).returncode == 0  # a dry run writes no file
    assert not path.exists()
    assert run_cli(config, "--remove", "--account", C).returncode == 0  # nor one account
    assert not path.exists()

    result = run_cli(config, "--remove")
    assert result.returncode == 0, result.stderr
    text = path.read_text()
    assert check_metrics(text).returncode == 0, check_metrics(text).stderr
    samples = parse_samples(text)
    assert samples["chatmail_expire_accounts_scanned"] == 3
    assert samples["chatmail_expire_accounts_removed"] == 1
    assert samples['chatmail_expire_messages_removed{rule="age"}'] == 1
    assert samples['chatmail_expire_messages_removed{rule="inactive"}'] == 1
    assert samples['chatmail_expire_messages_removed{rule="large"}'] == 0
    assert samples["chatmail_expire_bytes_removed"] > 300
    finished = samples["chatmail_expire_last_run_timestamp_seconds"]
    assert abs(finished - time.time()) < 60
    assert samples[LAST_SUCCESS] == finished
    assert scan_directory(directory) == {"chatmail-expire.prom": []}


def test_a_run_with_errors_keeps_the_last_success():
    ok = report.prometheus_text(Stats(), 1.0, False, 1000.0)
    assert parse_samples(ok)[LAST_SUCCESS] == 1000
    failed = report.prometheus_text(
        Stats(errors=2), 1.0, False, 2000.0, report.previous_success(ok)
    )
    assert parse_samples(failed)[LAST_SUCCESS] == 1000
    assert parse_samples(failed)["chatmail_expire_last_run_timestamp_seconds"] == 2000
    dry = report.prometheus_text(Stats(), 1.0, True, 3000.0, None)
    assert LAST_SUCCESS not in parse_samples(dry)  # no success yet: no line


@given(st.floats(min_value=0, allow_infinity=False, allow_nan=False))
def test_the_last_success_round_trips(when):
    text = report.prometheus_text(Stats(), 0.5, False, when)
    assert report.previous_success(text) == when


@given(st.text())
def test_previous_success_reads_any_text_without_failing(text):
    value = report.previous_success(text)
    assert value is None or (value >= 0 and not math.isnan(value))
