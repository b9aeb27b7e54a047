"""chatmail-web's metrics after real requests through nginx: each counter moved by what the
clients were answered."""

from __future__ import annotations

import shutil
from pathlib import Path

from harness import stack_dir
from harness.fixtures import write_test_config
from harness.net import free_port
from harness.tls import self_signed_cert
from harness.web import WebFront
from metrics.privacy import scan_directory
from metrics.promtool import check_metrics
from metrics.wait import moved, samples, wait_for
from web.conftest import DOMAIN, WEB_ADDRESS

RESPONSES = "chatmail_web_responses_total"


def test_accounts_and_refusals_are_counted():
    root = stack_dir("chatmail-web-metrics-")
    config = write_test_config(
        root, root / "milter.sock", tls={"self_signed": "yes"}, web={"new_per_window": 2}
    )
    try:
        with WebFront(
            root,
            config,
            address=WEB_ADDRESS,
            tls=self_signed_cert(root, DOMAIN),
            http_port=free_port(WEB_ADDRESS),
            https_port=free_port(WEB_ADDRESS),
        ) as web:
            path = Path(config.chatmail.metrics_dir) / "chatmail-web.prom"
            before = wait_for(path, lambda s: f'{RESPONSES}{{code="200"}}' in s)
            statuses = [web.request("POST", "/new", b"")[0] for _ in range(3)]
            statuses += [web.request("GET", "/new")[0], web.request("PUT", "/new", b"x")[0]]
            assert statuses == [200, 200, 429, 302, 405]
            want = {
                f'{RESPONSES}{{code="200"}}': 2,
                f'{RESPONSES}{{code="429"}}': 1,
                f'{RESPONSES}{{code="302"}}': 1,
                f'{RESPONSES}{{code="405"}}': 1,
                "chatmail_web_accounts_handed_out_total": 2,
            }
            after = wait_for(path, lambda s: moved(before, s) == want)
            web.service.stop()
            assert samples(path) == after  # the write at stop
            result = check_metrics(path.read_text())
            assert result.returncode == 0, result.stdout + result.stderr
            assert scan_directory(path.parent)[path.name] == []
    finally:
        shutil.rmtree(root, ignore_errors=True)
