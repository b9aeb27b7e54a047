"""coturn on loopback, configured from chatmail_services/templates/coturn/turnserver.conf."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from chatmail_services.config import Config

from .net import free_port
from .render import render, turn_values


class Coturn:
    """`turnserver -c <rendered conf>` on a loopback address with the relay's TURN secret."""

    def __init__(
        self, root: Path, config: Config, port: int | None = None, address: str = "127.0.0.1"
    ) -> None:
        self.dir = Path(root) / "coturn"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.log_path = self.dir / "turnserver.log"
        self.conf = self.dir / "turnserver.conf"
        values = {
            **turn_values(config),
            "turn_port": self.port,
            "turn_listen": address,
            "turn_relay_ips": f"relay-ip={address}",
            "turn_log": self.log_path,
            "turn_pid": self.dir / "turnserver.pid",
        }
        render("coturn/turnserver.conf", values, self.conf)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Coturn:
        self.process = subprocess.Popen(
            ["turnserver", "-c", str(self.conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while "listener opened on" not in self.log_text() and "Relay ports" not in self.log_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"turnserver did not start:\n{self.log_text()}")
            time.sleep(0.05)
        time.sleep(0.2)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_text(self) -> str:
        logs = sorted(self.dir.glob("turnserver*.log"))
        return "".join(p.read_text(errors="replace") for p in logs)

    def __enter__(self) -> Coturn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
