"""bench/imap: many idle IMAP clients, and the push latency, on a whole local relay.

1. N concurrent IDLE connections (TLS, logged in, INBOX selected, IDLE): the proportional
   set size (PSS) of all Dovecot processes per 1,000 idle connections, with hibernation (the
   template's imap_hibernate_timeout = 30s, measured after the clients were idle that long)
   and without (the same relay with imap_hibernate_timeout = 0).
2. Push latency: messages delivered over LMTP (the socket Postfix uses) to an account with one
   device token; time from the end of DATA to the POST at a local HTTPS stand-in for the
   notification service, p50 and p99.

Run as root from the repository:  .venv/bin/python bench/imap/run.py [--connections 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import smtplib
import ssl
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "testkit"))  # the harness package

from harness import stack_dir
from harness.imap import Imap
from harness.pushservice import StandIn
from harness.relay import LocalRelay

TLS = ssl._create_unverified_context()
PER_ACCOUNT = 10  # Dovecot's mail_max_userip_connections
PASSWORD = "bench-imap-password"
BENCH_AUTH = {"max_load_1m": 1000, "min_available_memory": 0, "min_free_disk": 0}


def dovecot_pss(relay: LocalRelay) -> int:
    """Sum of PSS (bytes) of the Dovecot master and every process below it."""
    master = int((relay.dovecot.base_dir / "master.pid").read_text().split()[0])
    pids = [master]
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
    children: dict[int, list[int]] = {}
    for line in out.splitlines():
        pid, ppid = map(int, line.split())
        children.setdefault(ppid, []).append(pid)
    stack = [master]
    while stack:
        for child in children.get(stack.pop(), []):
            pids.append(child)
            stack.append(child)
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


async def idle_client(port: int, user: str, ready: asyncio.Event, count: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=TLS)
    await reader.readline()
    for tag, command in ((b"a", f'LOGIN "{user}" "{PASSWORD}"'), (b"b", "SELECT INBOX")):
        writer.write(tag + b" " + command.encode() + b"\r\n")
        while not (line := await reader.readline()).startswith(tag + b" "):
            pass
        assert line.startswith(tag + b" OK"), line
    writer.write(b"c IDLE\r\n")
    assert (await reader.readline()).startswith(b"+")
    count[0] += 1
    await ready.wait()
    writer.write(b"DONE\r\n")
    writer.close()


async def hold_idle(relay: LocalRelay, users: list[str], n: int, settle: float) -> tuple[int, int]:
    """Open n IDLE connections; after `settle` seconds return (PSS before, PSS with them)."""
    before = dovecot_pss(relay)
    ready, count = asyncio.Event(), [0]
    tasks = []
    for i in range(n):
        user = users[i // PER_ACCOUNT]
        tasks.append(asyncio.create_task(idle_client(relay.dovecot.imaps_port, user, ready, count)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)
    while count[0] < n:
        failed = [t for t in tasks if t.done() and t.exception()]
        if failed:
            raise failed[0].exception()  # type: ignore[misc]
        await asyncio.sleep(0.2)
    await asyncio.sleep(settle)
    after = dovecot_pss(relay)
    ready.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return before, after


def make_accounts(relay: LocalRelay, count: int) -> list[str]:
    users = [f"idle{i:05d}@{relay.config.chatmail.mail_domain}" for i in range(count)]
    for user in users:
        Imap(relay.dovecot.imaps_port).login(user, PASSWORD).close()
    return users


def idle_memory(connections: int, hibernate: bool) -> float:
    root = stack_dir("chatmail-bench-imap-")
    relay = LocalRelay(root, milter=False, config_sections={"auth": BENCH_AUTH})
    if not hibernate:
        text = relay.dovecot.conf.read_text()
        relay.dovecot.conf.write_text(
            text.replace("imap_hibernate_timeout = 30s", "imap_hibernate_timeout = 0")
        )
    try:
        with relay:
            users = make_accounts(relay, -(-connections // PER_ACCOUNT))
            before, after = asyncio.run(
                hold_idle(relay, users, connections, 40 if hibernate else 5)
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return (after - before) / connections * 1000


def push_latency(messages: int) -> list[float]:
    root = stack_dir("chatmail-bench-push-")
    (root / "standin").mkdir()
    stand_in = StandIn(root / "standin")
    stand_in.start()
    sections = {"metadata": {"notify_url": stand_in.url, "notify_ca_file": stand_in.cert}}
    relay = LocalRelay(root, milter=False, config_sections=sections)
    latencies = []
    try:
        with relay:
            user = f"pushed001@{relay.config.chatmail.mail_domain}"
            imap = Imap(relay.dovecot.imaps_port).login(user, PASSWORD)
            assert imap.set_token("benchtoken").startswith(b"OK")
            imap.close()
            message = (
                f"From: <friend@elsewhere.example>\r\nTo: <{user}>\r\nSubject: x\r\n\r\nhi\r\n"
            )
            lmtp = smtplib.LMTP(str(relay.dovecot.lmtp_socket))
            for _ in range(messages):
                seen = stand_in.count("benchtoken")
                lmtp.sendmail("friend@elsewhere.example", [user], message)
                sent = time.perf_counter()
                while stand_in.count("benchtoken") == seen:
                    time.sleep(0.0005)
                latencies.append(time.perf_counter() - sent)
            lmtp.quit()
    finally:
        stand_in.stop()
        shutil.rmtree(root, ignore_errors=True)
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--messages", type=int, default=1000)
    args = parser.parse_args()
    for hibernate in (True, False):
        per_1000 = idle_memory(args.connections, hibernate)
        label = "with hibernation" if hibernate else "without hibernation"
        print(f"{args.connections} idle IMAP connections {label}: "
              f"{per_1000 / 2**20:.1f} MiB Dovecot PSS per 1,000", flush=True)  # fmt: skip
    latencies = sorted(push_latency(args.messages))
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    print(f"LMTP delivery -> notification POST over {len(latencies)} messages: "
          f"p50 {p50:.1f} ms, p99 {p99:.1f} ms", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
