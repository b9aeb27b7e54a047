"""Loopback ports and waiting for servers."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on host (a loopback address) that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_for_tcp(port: int, timeout: float = 15.0, host: str = "127.0.0.1") -> None:
    """Wait until something accepts connections on host:port (a loopback address)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port}") from None
            time.sleep(0.05)


def wait_for_unix(path: Path, timeout: float = 15.0) -> None:
    """Wait until something accepts connections on the UNIX socket at path."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(1)
                sock.connect(str(path))
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {path}") from None
            time.sleep(0.05)


@contextlib.contextmanager
def serving_on_own_socket(
    command: Path, config_path: Path | str, socket_path: Path, log_path: Path
) -> Iterator[subprocess.Popen]:
    """`<command> --config <config> serve --socket <path>`, without socket activation, once it
    listens; its output goes to `log_path`. On leaving: SIGTERM, and its exit awaited (the
    caller checks `returncode`)."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(command), "--config", str(config_path), "serve", "--socket", str(socket_path)],
            stdout=log,
            stderr=log,
        )
    try:
        wait_for_unix(socket_path, timeout=20)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)


def process_running(pid: int) -> bool:
    """Whether `pid` still runs: a zombie has finished (a daemon's zombie can wait a second
    for this machine's init to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"
