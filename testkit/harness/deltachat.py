"""The real Delta Chat core (deltachat-rpc-server from PyPI) for the end-to-end tests."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import deltachat_rpc_server
from deltachat_rpc_client import DeltaChat, Rpc

from . import VENV_BIN


@contextlib.contextmanager
def deltachat_core_in(
    container, accounts_dir: str = "/root/deltachat-accounts"
) -> Iterator[DeltaChat]:
    """The core inside a booted container (harness.container): the PyPI package's static
    binary (the venv's console script is a Python wrapper) copied in and entered with nsenter,
    so it reaches the relay on the container's own loopback."""
    binary = Path(deltachat_rpc_server.__file__).parent / "deltachat-rpc-server"
    container.copy_in(binary, "/usr/local/bin/deltachat-rpc-server")
    container.path("/usr/local/bin/deltachat-rpc-server").chmod(0o755)
    wrapper = container.root.parent / "deltachat-rpc-server-in-container"
    wrapper.write_text(
        f"#!/bin/sh\nexec nsenter -t {container.pid1} -a /usr/local/bin/deltachat-rpc-server\n"
    )
    wrapper.chmod(0o755)
    container.check(["mkdir", "-p", accounts_dir])
    with Rpc(accounts_dir=accounts_dir, rpc_server_path=str(wrapper)) as rpc:
        yield DeltaChat(rpc)


@contextlib.contextmanager
def deltachat_core(accounts_dir: Path) -> Iterator[DeltaChat]:
    """One rpc server keeping its accounts in `accounts_dir`, for the time of the block."""
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}"}
    with Rpc(
        accounts_dir=str(accounts_dir),
        rpc_server_path=str(VENV_BIN / "deltachat-rpc-server"),
        env=env,
    ) as rpc:
        yield DeltaChat(rpc)


def verify_and_chat(inviter, joiner, *texts: str) -> None:
    """`joiner` secure-joins `inviter` (scans its QR code; both wait for success), then the
    messages go back and forth, the joiner first; each must arrive with its text."""
    joiner.secure_join(inviter.get_qr_code())
    inviter.wait_for_securejoin_inviter_success()
    joiner.wait_for_securejoin_joiner_success()
    sender, receiver = joiner, inviter
    for text in texts:
        sender.create_chat(receiver).send_text(text)
        assert receiver.wait_for_incoming_msg().get_snapshot().text == text
        sender, receiver = receiver, sender
