"""Sockets passed by systemd (or `systemd-socket-activate`) under socket activation."""

from __future__ import annotations

import os
import socket

from systemd import daemon


def inherited_sockets() -> list[socket.socket]:
    """Return the listening sockets systemd passed (fds 3...), or an empty list.

    The `LISTEN_*` variables are unset and the descriptors made close-on-exec, so that child
    processes inherit neither.
    """
    sockets = []
    for fd in daemon.listen_fds(unset_environment=True):
        os.set_inheritable(fd, False)
        sockets.append(socket.socket(fileno=fd))
    return sockets


def notify_ready() -> None:
    """Tell systemd (when it is listening) that the service is ready."""
    daemon.notify("READY=1")


def notify_stopping() -> None:
    """Tell systemd (when it is listening) that the service is stopping."""
    daemon.notify("STOPPING=1")
