"""The federation network (harness/federation.py), started once for the package."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from deltachat_rpc_client import DeltaChat
from harness import stack_dir
from harness.deltachat import deltachat_core
from harness.federation import Federation, build, start, stop


@pytest.fixture(scope="package")
def federation(request: pytest.FixtureRequest) -> Iterator[Federation]:
    root = stack_dir("chatmail-federation-")
    network = build(root)
    started = start(network)
    failed_before = request.session.testsfailed
    try:
        yield network
        if request.session.testsfailed > failed_before:
            for relay in network.relays:
                print(f"--- {relay.domain}: our services ---\n" + relay.service_logs()[-20000:])
                print(f"--- {relay.domain}: postfix ---\n" + relay.postfix.log_text()[-20000:])
            print("--- outside postfix ---\n" + network.outside.log_text()[-10000:])
            print("--- nsd ---\n" + network.ns.output()[-5000:])
    finally:
        stop(started)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="package")
def deltachat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeltaChat]:
    """The real Delta Chat core (deltachat-rpc-server from PyPI), holding accounts of both."""
    with deltachat_core(tmp_path_factory.mktemp("deltachat") / "accounts") as core:
        yield core
