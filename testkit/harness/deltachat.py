"""The real Delta Chat core (deltachat-rpc-server from PyPI) for the end-to-end tests."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from deltachat_rpc_client import DeltaChat, Rpc

from . import VENV_BIN


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
