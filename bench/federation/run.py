"""bench/federation/run.py: delivery between two relays over HTTPS (chatmail-mxsend) vs SMTP.

Three relays of the test harness on loopback (testkit/harness, as tests/mxsend) and nsd:
rx.test receives (port 25 and nginx's 443 with /mxdeliv); hs.test sends with
`[federation] https = yes` (Postfix -> chatmail-mxsend -> POST /mxdeliv), ss.test with
`https = no` (Postfix's smtp client -> rx.test:25, verified STARTTLS). Rounds alternate
between the two senders, so both see the same machine noise. Each round submits `--messages`
real Delta Chat messages (one SMTPS session, the sender's account) and waits until all are in
the recipient's Maildir.

Reported per mode: messages per second (first submission to last arrival), latency from
each message's submission to its file in the Maildir (p50, p99), and CPU per message on each
side: user + system time of every process of the relay (Postfix, Dovecot, nginx, our services
and their children, waited-for children included), the difference over the round.

Run as root from the repository:
  .venv/bin/python bench/federation/run.py [--messages 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import smtplib
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1] / "testkit")]

from harness import stack_dir  # noqa: E402
from harness.federation import new_account  # noqa: E402
from harness.messages import TLS, maildir_files, new_message_id, sample  # noqa: E402
from harness.nameserver import NameServer  # noqa: E402
from harness.net import free_port  # noqa: E402
from harness.relay import STANDARD_PORTS, LocalRelay  # noqa: E402
from harness.tls import TestCA  # noqa: E402

NAMESERVER = ("127.53.0.61", 53)
RECEIVER = ("rx.test", "127.0.0.63")
SENDERS = {"https": ("hs.test", "127.0.0.61", "yes"), "smtp": ("ss.test", "127.0.0.62", "no")}
MESSAGE = "chat-text-alice-to-bob"
TICK = os.sysconf("SC_CLK_TCK")


def make_relay(root: Path, domain: str, address: str, ca: TestCA, https: str) -> LocalRelay:
    relay_root = root / domain
    relay_root.mkdir()
    relay_root.chmod(0o755)
    return LocalRelay(
        relay_root,
        domain=domain,
        address=address,
        ports=STANDARD_PORTS,
        nameserver=NAMESERVER,
        ca=ca,
        web=True,
        web_ports=(free_port(address), 443),
        config_sections={
            "chatmail": {"log_level": "info"},
            "milter": {"max_user_send_per_minute": 1000000, "max_user_send_burst_size": 1000000},
            "federation": {"https": https},
        },
    )


def root_pids(relay: LocalRelay) -> list[int]:
    """The relay's long-lived processes: the masters of Postfix, Dovecot, nginx; services."""
    files = [
        relay.postfix.queue / "pid" / "master.pid",
        relay.dovecot.base_dir / "master.pid",
    ]
    if relay.web:
        files.append(relay.web.nginx.dir / "nginx.pid")
    pids = [int(f.read_text().split()[0]) for f in files if f.exists()]
    services = [relay.auth, relay.metadata, relay.milter, relay.mxdeliv, relay.mxsend]
    if relay.web:
        services.append(relay.web.service)
    return pids + [s.pid for s in services if s and s.pid]


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, user + system + waited children's ticks) of a live process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[1]), sum(int(v) for v in fields[11:15])


def cpu_seconds(relay: LocalRelay) -> float:
    """CPU of the relay's process trees so far (seconds)."""
    stats = {int(p): s for p in os.listdir("/proc") if p.isdigit() and (s := _stat(int(p)))}
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo, seen = 0, list(root_pids(relay)), set()
    while todo:
        pid = todo.pop()
        if pid in seen or pid not in stats:
            continue
        seen.add(pid)
        total += stats[pid][1]
        todo += children.get(pid, [])
    return total / TICK


def arrivals(home: Path, ids: set[str]) -> dict[str, float]:
    """{message id: mtime of its file} for those of `ids` in the Maildir."""
    found = {}
    for path in maildir_files(home):
        data = path.read_bytes()
        for mid in ids:
            if mid.encode() in data:
                found[mid] = path.stat().st_mtime
    return found


def one_round(sender: LocalRelay, rx: LocalRelay, count: int) -> dict[str, float]:
    account, rcpt = new_account(sender), new_account(rx)
    home = Path(rx.config.chatmail.mailboxes_dir) / rcpt["email"]
    cpu_before = cpu_seconds(sender), cpu_seconds(rx)
    submitted: dict[str, float] = {}
    with smtplib.SMTP_SSL(sender.address, sender.postfix.smtps_port, context=TLS) as smtp:
        smtp.login(account["email"], account["password"])
        for _ in range(count):
            mid = new_message_id(sender.domain)
            message = sample(MESSAGE, account["email"], rcpt["email"], mid)
            submitted[mid] = time.time()
            smtp.sendmail(account["email"], [rcpt["email"]], message)
    deadline = time.monotonic() + 300
    found: dict[str, float] = {}
    while len(found) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(found)} of {count} arrived")
        time.sleep(0.2)
        found = arrivals(home, set(submitted))
    cpu_after = cpu_seconds(sender), cpu_seconds(rx)
    latencies = sorted(found[m] - submitted[m] for m in submitted)
    span = max(found.values()) - min(submitted.values())
    return {
        "rate": count / span,
        "p50": latencies[len(latencies) // 2],
        "p99": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "cpu_sender_ms": 1000 * (cpu_after[0] - cpu_before[0]) / count,
        "cpu_receiver_ms": 1000 * (cpu_after[1] - cpu_before[1]) / count,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    root = stack_dir("chatmail-bench-federation-")
    ca = TestCA(root / "ca")
    specs = {"rx": (*RECEIVER, "yes"), **SENDERS}
    with ThreadPoolExecutor(len(specs)) as pool:
        futures = {k: pool.submit(make_relay, root, d, a, ca, h) for k, (d, a, h) in specs.items()}
        relays = {k: f.result() for k, f in futures.items()}
    zones = {relay.domain: relay.zone_text() for relay in relays.values()}
    ns = NameServer(root, address=NAMESERVER[0], zones=zones, port=NAMESERVER[1])
    ns.start()
    started: list[LocalRelay] = []
    try:
        for relay in relays.values():
            started.append(relay.start())
        results: dict[str, list[dict[str, float]]] = {mode: [] for mode in SENDERS}
        one_round(relays["https"], relays["rx"], 5)  # warm-up: connections, caches
        one_round(relays["smtp"], relays["rx"], 5)
        for index in range(args.rounds):
            for mode in SENDERS if index % 2 == 0 else reversed(list(SENDERS)):
                results[mode].append(one_round(relays[mode], relays["rx"], args.messages))
                print(mode, {k: round(v, 3) for k, v in results[mode][-1].items()}, flush=True)
        print(f"\n{args.messages} messages x {args.rounds} rounds per mode (medians of rounds)")
        print("| mode | messages/s | p50 s | p99 s | CPU ms/msg sender | CPU ms/msg receiver |")
        print("|---|---|---|---|---|---|")
        for mode, rounds in results.items():
            med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
            print(
                f"| {mode} | {med['rate']:.1f} | {med['p50']:.3f} | {med['p99']:.3f} | "
                f"{med['cpu_sender_ms']:.1f} | {med['cpu_receiver_ms']:.1f} |"
            )
    finally:
        for relay in started:
            relay.stop()
        ns.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
