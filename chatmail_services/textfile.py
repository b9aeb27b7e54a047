"""The node exporter's textfile collector: one `<name>.prom` per process, replaced atomically.

`Publisher` writes a registry's text every `interval` seconds from a background thread and
once more when stopped; the services never write per message. A file that cannot be written
is logged once (a warning naming the path only; info when the directory does not exist, as
without the node exporter) and tried again next time: metrics never stop a service.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from .config import Config
from .metrics import Registry

log = logging.getLogger("chatmail.metrics")


def write_atomically(path: str | Path, text: str) -> None:
    """Write `text` to `path` via a temporary file in the same directory and a rename, so the
    node exporter never reads half a file (it skips names not ending in `.prom`)."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def textfile_path(directory: str, name: str) -> Path | None:
    """`<directory>/<name>.prom`, or None when metrics are off (an empty directory setting)."""
    return Path(directory) / f"{name}.prom" if directory else None


class Publisher:
    """Writes `render()` to `path` every `interval` seconds and at `stop()`."""

    def __init__(
        self, path: Path, render: Callable[[], str], interval: float, name: str = "metrics"
    ) -> None:
        self.path = path
        self._render = render
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{name}-writer", daemon=True)
        self._failing = False

    def write(self) -> bool:
        """Write the file now; False (logged once per failure streak) if it could not be."""
        try:
            write_atomically(self.path, self._render())
        except OSError as exc:
            if not self._failing and not self.path.parent.is_dir():
                # the node exporter is not installed: normal for a relay without monitoring
                log.info("metrics: %s does not exist, no metrics written", self.path.parent)
            elif not self._failing:
                log.warning("metrics: cannot write %s: %s", self.path, exc.strerror or exc)
            self._failing = True
            return False
        if self._failing:
            log.info("metrics: writing %s again", self.path)
        self._failing = False
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.write()

    def start(self) -> Publisher:
        self.write()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the timer and write the final values."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.write()


def start_publisher(
    directory: str, name: str, registry: Registry, interval: float
) -> Publisher | None:
    """A started `Publisher` of `registry` to `<directory>/<name>.prom`, or None when off."""
    path = textfile_path(directory, name)
    if path is None:
        return None
    return Publisher(path, registry.render, interval, name).start()


def config_publisher(config: Config, name: str, registry: Registry) -> Publisher | None:
    """`start_publisher` as `[chatmail] metrics_dir` and `metrics_interval` say."""
    chatmail = config.chatmail
    return start_publisher(chatmail.metrics_dir, name, registry, chatmail.metrics_interval)
