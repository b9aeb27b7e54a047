"""Run a service the way a systemd .socket unit does: the socket outlives the process.

`systemd-socket-activate` execs the program, so its socket dies with it. Here the harness
holds the listening socket (like systemd's socket unit) and hands it to each new process as
fd 3 with LISTEN_FDS=1 and LISTEN_PID set, so a restart loses no queued connection.
"""

from __future__ import annotations

import grp
import os
import pwd
import select
import signal
import socket
import subprocess
from pathlib import Path

# bash, not dash: dash refuses fd numbers above 9. The service runs with the socket on fd 3
# and LISTEN_PID = its own pid ($$ survives exec).
_WRAPPER = 'LISTEN_FDS=1 LISTEN_PID=$$ exec "$@"'
_MOVE_TO_FD3 = "exec 3<&{fd} {fd}<&-; "


class ActivatedService:
    """A service process started with an inherited listening UNIX socket.

    `user` runs the process (and owns the socket unless `socket_user` is given); `group` is
    the socket's group, as SocketUser=/SocketGroup=/SocketMode= in a .socket unit.
    """

    def __init__(
        self,
        argv: list[str],
        socket_path: Path,
        *,
        log_path: Path,
        mode: int = 0o666,
        user: str | None = None,
        group: str | None = None,
        socket_user: str | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        groups: tuple[str, ...] = (),
    ) -> None:
        """`groups`: supplementary groups of the process besides the user's own
        (SupplementaryGroups=)."""
        self.argv = list(argv)
        self.groups = groups
        self.socket_path = Path(socket_path)
        self.log_path = Path(log_path)
        self.user = user
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd or self.log_path.parent
        self.process: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None  # the last process's exit status
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        if self.socket_path.exists() or self.socket_path.is_symlink():
            self.socket_path.unlink()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(self.socket_path))
        self.listener.listen(4096)
        os.chmod(self.socket_path, mode)
        owner = socket_user or user
        if owner or group:
            entry = pwd.getpwnam(owner) if owner else None
            uid = entry.pw_uid if entry else -1
            gid = grp.getgrnam(group).gr_gid if group else (entry.pw_gid if entry else -1)
            os.chown(self.socket_path, uid, gid)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> ActivatedService:
        """Start the process (not when one runs already: `with service:` starts it too)."""
        if self.alive:
            raise RuntimeError(f"{self.argv[0]} runs already (pid {self.pid})")
        fd = self.listener.fileno()
        script = ("" if fd == 3 else _MOVE_TO_FD3.format(fd=fd)) + _WRAPPER
        command = ["bash", "-c", script, "bash", *self.argv]
        if self.user:
            gid = pwd.getpwnam(self.user).pw_gid
            if self.groups:
                gids = {*os.getgrouplist(self.user, gid)}
                gids.update(grp.getgrnam(name).gr_gid for name in self.groups)
                group_args = [f"--groups={','.join(map(str, sorted(gids)))}"]
            else:
                group_args = ["--init-groups"]
            command = [
                "setpriv",
                f"--reuid={self.user}",
                f"--regid={gid}",
                *group_args,
                "--",
                *command,
            ]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command,
                pass_fds=(fd,),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=self.env,
                cwd=self.cwd,
            )
        return self

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after timeout; return the exit status (of the last process,
        if it was stopped already)."""
        if self.process:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            self.returncode = self.process.returncode
            self.process = None
        return self.returncode

    def kill(self) -> None:
        """SIGKILL; the socket stays (connections wait for the next start)."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.process:
            self.returncode = self.process.returncode
        self.process = None

    def wait_for_queued_connection(self, timeout: float = 30.0) -> bool:
        """Whether a client's connection waits in the held socket's queue (not yet accepted)
        within `timeout` seconds; the connection stays queued."""
        readable, _, _ = select.select([self.listener], [], [], timeout)
        return bool(readable)

    def restart(self) -> ActivatedService:
        self.stop()
        return self.start()

    def close(self) -> int | None:
        """Stop the service and close (and remove) the socket, as stopping the .socket unit
        does: connections still queued are refused. Returns the exit status."""
        status = self.stop()
        if self.listener.fileno() != -1:
            self.listener.close()
            if self.socket_path.exists():
                self.socket_path.unlink()
        return status

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> ActivatedService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
