"""The collector: its parsers, a failing source left out (never shown as 0), and the file."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from harness.tls import self_signed_cert
from hypothesis import given
from hypothesis import strategies as st
from metrics.privacy import private_data
from metrics.promtool import check_metrics, parse_samples

from chatmail_services import collect

EXE = str(Path(sys.executable).parent / "chatmail-metrics-collect")
HEADER = "username                    # proto (pids)                        (ips)"


@given(
    st.lists(st.from_regex(r"\A[a-z0-9@.]{1,30} +1 imap \(\d+\) \(127\.0\.0\.1\)\Z"), max_size=20)
)
def test_who_lines_are_counted_without_the_header(rows):
    assert collect.count_who_lines("\n".join([HEADER, *rows]) + "\n") == len(rows)
    assert collect.count_who_lines("\n".join(rows)) == len(rows)  # a doveadm without header


@given(st.text())
def test_any_who_output_gives_a_count(text):
    assert collect.count_who_lines(text) >= 0


def fake_queue(root: Path, counts: dict[str, int]) -> Path:
    for name in collect.POSTFIX_QUEUES:
        (root / name).mkdir(parents=True)
    for name, count in counts.items():
        for index in range(count):
            sub = root / name / format(index % 16, "X")  # hashed like Postfix's deferred
            sub.mkdir(exist_ok=True)
            (sub / f"ID{index}").write_text("")
    return root


def test_every_source_read(config, tmp_path):
    queue = fake_queue(tmp_path / "queue", {"deferred": 3, "active": 1})
    for name in ("a1@chat.example", "b2@chat.example"):
        (Path(config.chatmail.mailboxes_dir) / name).mkdir()
    cert, _key = self_signed_cert(tmp_path, "chat.example")
    config = replace(config, tls=replace(config.tls, cert_file=str(cert), self_signed=True))
    text = collect.collect(config, str(queue), sessions=lambda: 4, now=lambda: 1000.0)
    samples = parse_samples(text)
    assert samples['chatmail_postfix_queue_messages{queue="deferred"}'] == 3
    assert samples['chatmail_postfix_queue_messages{queue="active"}'] == 1
    assert samples['chatmail_postfix_queue_messages{queue="hold"}'] == 0
    assert samples["chatmail_dovecot_imap_sessions"] == 4
    assert samples["chatmail_accounts"] == 2
    assert samples["chatmail_tls_certificate_expiry_timestamp_seconds"] > 1000
    assert all(samples[f'chatmail_collect_success{{source="{s}"}}'] == 1
               for s in ("postfix", "dovecot", "certificate", "accounts"))  # fmt: skip
    assert check_metrics(text).returncode == 0
    assert private_data(text) == []


def test_a_failing_source_is_left_out_not_zero(config, tmp_path):
    def broken() -> int:
        raise RuntimeError("doveadm who exited 75")

    text = collect.collect(config, str(tmp_path / "no-queue"), sessions=broken)
    samples = parse_samples(text)
    assert samples['chatmail_collect_success{source="postfix"}'] == 0
    assert samples['chatmail_collect_success{source="dovecot"}'] == 0
    assert samples['chatmail_collect_success{source="certificate"}'] == 0  # no certificate
    assert not any(key.startswith(("chatmail_postfix", "chatmail_dovecot", "chatmail_tls"))
                   for key in samples)  # fmt: skip
    assert samples["chatmail_accounts"] == 0


def test_the_command_writes_its_file_or_nothing(config, tmp_path):
    env = {**os.environ, "CHATMAIL_CONFIG": config.path}
    queue = fake_queue(tmp_path / "queue", {"deferred": 2})
    run = [EXE, "--queue-dir", str(queue), "--dovecot-config", str(tmp_path / "none.conf")]
    result = subprocess.run(run, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    path = Path(config.chatmail.metrics_dir) / "chatmail-collect.prom"
    assert parse_samples(path.read_text())['chatmail_postfix_queue_messages{queue="deferred"}'] == 2
    os.rename(path.parent, tmp_path / "moved")
    result = subprocess.run(run, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "does not exist, nothing written" in result.stderr
