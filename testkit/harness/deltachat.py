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
