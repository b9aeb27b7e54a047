"""The measuring side of bench/relay/dovecot_versions.py, run inside a relay's container.

Standard library only (it runs with the container's python3: 3.11 on Debian 12, 3.13 on
Debian 13). Reads one JSON job on stdin, prints one JSON result on stdout:

  job:    {"mode": "active" | "hibernated", "count": messages (active), "mailboxes": dir,
           "sender": [addr, password], "rcpts": [[addr, password, message (latin-1)], ...]}
  result: {"idle": [seconds, ...], "maildir": [seconds, ...], "hibernated": sessions parked
           (hibernated: before the first message; active: after the last), "cpu": seconds of
           CPU dovecot.service's processes used from the first submission to the last EXISTS}

For each recipient an IMAP IDLE session on INBOX (127.0.0.1:993) is opened; then, one message
at a time over SMTPS (127.0.0.1:465), the seconds from submission to the message file in the
recipient's Maildir and to the IDLE session's `* N EXISTS`. "active": one recipient gets every
message, its session is a working imap process. "hibernated": one message for each recipient,
sent only once every session has been parked in imap-hibernate (its inotify descriptor is
there), as Delta Chat's sessions are after imap_hibernate_timeout.
"""

from __future__ import annotations

import json
import os
import smtplib
import socket
import ssl
import sys
import threading
import time
from pathlib import Path

TLS = ssl._create_unverified_context()
WAIT = 30.0  # seconds any one step may take
HIBERNATE_WAIT = 120.0  # imap_hibernate_timeout (30 s) and the time to move the sessions


class Idler:
    """An IMAP IDLE session on INBOX; `seen` is set, with its time, at each new EXISTS."""

    def __init__(self, addr: str, password: str) -> None:
        self.sock = TLS.wrap_socket(socket.create_connection(("127.0.0.1", 993), timeout=WAIT))
        self.file = self.sock.makefile("rb")
        self.file.readline()
        self._command(f'a1 LOGIN "{addr}" "{password}"')
        self._command("a2 SELECT INBOX")
        self.sock.sendall(b"a3 IDLE\r\n")
        if not self.file.readline().startswith(b"+"):
            raise RuntimeError("IDLE refused")
        self.sock.settimeout(None)
        self.seen = threading.Event()
        self.at = 0.0
        threading.Thread(target=self._read, daemon=True).start()

    def _command(self, line: str) -> None:
        tag = line.split()[0].encode()
        self.sock.sendall(line.encode() + b"\r\n")
        while True:
            reply = self.file.readline()
            if not reply:
                raise RuntimeError(f"connection closed after {line.split()[1]}")
            if reply.startswith(tag):
                if b" OK" not in reply:
                    raise RuntimeError(reply.decode(errors="replace"))
                return

    def _read(self) -> None:
        try:
            for line in self.file:
                if line.endswith(b" EXISTS\r\n"):
                    self.at = time.perf_counter()
                    self.seen.set()
        except (OSError, ValueError):
            pass  # closed by close()

    def close(self) -> None:
        self.sock.close()


def hibernated_sessions() -> int:
    """IDLE sessions parked in imap-hibernate: its inotify descriptors, one per session."""
    count = 0
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit() or (proc / "comm").read_text().strip() != "imap-hibernate":
                continue
            for fd in (proc / "fd").iterdir():
                count += os.readlink(fd) == "anon_inode:inotify"
        except OSError:
            continue  # gone meanwhile
    return count


def dovecot_cpu_seconds() -> float:
    """CPU time of everything in dovecot.service's cgroup so far (cgroup v2 cpu.stat)."""
    stat = Path("/sys/fs/cgroup/system.slice/dovecot.service/cpu.stat").read_text()
    fields = dict(line.split() for line in stat.splitlines())
    return int(fields["usage_usec"]) / 1e6


def wait_for(condition, what: str, timeout: float = WAIT) -> None:
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.0005)


def maildir_count(home: Path) -> int:
    """Messages in new/ and cur/ (a selected session moves new mail to cur/)."""
    return sum(len(os.listdir(home / folder)) for folder in ("new", "cur"))


def measure(job: dict) -> dict:
    sender, sender_pw = job["sender"]
    rcpts = job["rcpts"]
    mailboxes = Path(job["mailboxes"])
    baseline = hibernated_sessions()
    idlers = [Idler(addr, password) for addr, password, _ in rcpts]
    result: dict = {"idle": [], "maildir": [], "hibernated": 0}
    try:
        if job["mode"] == "hibernated":
            wait_for(
                lambda: hibernated_sessions() >= baseline + len(idlers),
                "sessions hibernated",
                HIBERNATE_WAIT,
            )
            result["hibernated"] = hibernated_sessions() - baseline
            sends = list(zip(idlers, rcpts, strict=True))
        else:
            sends = [(idlers[0], rcpts[0])] * job["count"]
        delivered: dict[str, int] = {}
        cpu_before = dovecot_cpu_seconds()
        with smtplib.SMTP_SSL("127.0.0.1", 465, context=TLS, timeout=WAIT) as smtp:
            smtp.login(sender, sender_pw)
            for idler, (addr, _, message) in sends:
                home = mailboxes / addr
                delivered[addr] = delivered.get(addr, 0) + 1
                idler.seen.clear()
                start = time.perf_counter()
                smtp.sendmail(sender, [addr], message.encode("latin-1"))
                expected = delivered[addr]
                wait_for(lambda h=home, n=expected: maildir_count(h) >= n, "delivered")
                result["maildir"].append(time.perf_counter() - start)
                if not idler.seen.wait(WAIT):
                    raise RuntimeError(f"no IDLE notification within {WAIT:.0f} s")
                result["idle"].append(idler.at - start)
        result["cpu"] = dovecot_cpu_seconds() - cpu_before
        if job["mode"] == "active":  # still a working imap process: none was parked
            result["hibernated"] = hibernated_sessions() - baseline
    finally:
        for idler in idlers:
            idler.close()
    return result


if __name__ == "__main__":
    print(json.dumps(measure(json.load(sys.stdin))))
