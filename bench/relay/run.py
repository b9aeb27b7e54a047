"""bench/relay: message latency through a whole local relay, and account creation rate.

1. Latency from SMTP submission (SMTPS, SASL) to the recipient's IMAP IDLE notification
   (`* N EXISTS`), p50 and p99, with and without the milter: two relays run side by side and
   the messages alternate between them in batches, so both see the same machine noise.
   The messages are real Delta Chat messages (shared/samples), so the milter accepts them.
2. New accounts per second created by real IMAP logins (first login = registration).

Run as root from the repository:  .venv/bin/python bench/relay/run.py [--messages 200]
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import smtplib
import socket
import ssl
import statistics
import string
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "testkit"))  # the harness package

from harness import stack_dir
from harness.messages import sample
from harness.relay import LocalRelay

TLS = ssl._create_unverified_context()
# Headroom checks would refuse creation under benchmark load; the benchmark measures the rest.
BENCH_AUTH = {"max_load_1m": 1000, "min_available_memory": 0, "min_free_disk": 0}


def random_credentials(domain: str) -> tuple[str, str]:
    alphabet = string.ascii_lowercase + string.digits
    local = "".join(secrets.choice(alphabet) for _ in range(9))
    return f"{local}@{domain}", secrets.token_urlsafe(18)


def submitted_message(sender: str) -> bytes:
    """The captured Delta Chat message, as submitted (CRLF, no delivery headers), from sender."""
    return sample("chat-text-alice-to-bob", sender, sender)


class Idler:
    """An IMAP IDLE session on INBOX that reports each new EXISTS."""

    def __init__(self, port: int, addr: str, password: str) -> None:
        raw = socket.create_connection(("127.0.0.1", port))
        self.sock = TLS.wrap_socket(raw)
        self.file = self.sock.makefile("rb")
        self.file.readline()
        self._command(f'a1 LOGIN "{addr}" "{password}"')
        self._command("a2 SELECT INBOX")
        self.sock.sendall(b"a3 IDLE\r\n")
        assert self.file.readline().startswith(b"+")
        self.exists = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _command(self, line: str) -> None:
        tag = line.split()[0].encode()
        self.sock.sendall(line.encode() + b"\r\n")
        while True:
            reply = self.file.readline()
            if reply.startswith(tag):
                if b" OK" not in reply:
                    raise RuntimeError(reply)
                return

    def _read(self) -> None:
        try:
            for line in self.file:
                if line.endswith(b"EXISTS\r\n"):
                    self.exists.set()
        except OSError:
            pass  # closed by close()

    def close(self) -> None:
        self.sock.close()


def latency_run(relay: LocalRelay, count: int) -> tuple[list[float], list[float]]:
    """Submit count messages one at a time; seconds from submission to the IDLE notification,
    and to the message file appearing in the recipient's Maildir (Dovecot holds the IDLE
    notification of a working, not hibernated, session back by a fixed 500 ms,
    NOTIFY_DELAY_MSECS, which hides the relay's own time; see dovecot_versions.py).

    Each run uses a new sender, so a batch no larger than the milter's burst (10) never meets
    the rate limit.
    """
    domain = relay.config.chatmail.mail_domain
    sender, sender_pw = random_credentials(domain)
    rcpt, rcpt_pw = random_credentials(domain)
    idler = Idler(relay.dovecot.imaps_port, rcpt, rcpt_pw)
    message = submitted_message(sender)
    home = Path(relay.config.chatmail.mailboxes_dir) / rcpt
    # The selected IDLE session makes Dovecot move new mail from new/ to cur/: count both.
    folders = (home / "new", home / "cur")
    idle_latencies, delivery_latencies = [], []
    with smtplib.SMTP_SSL("127.0.0.1", relay.postfix.smtps_port, context=TLS) as smtp:
        smtp.login(sender, sender_pw)
        for delivered in range(1, count + 1):
            idler.exists.clear()
            start = time.perf_counter()
            smtp.sendmail(sender, [rcpt], message)
            while sum(len(os.listdir(folder)) for folder in folders) < delivered:
                if time.perf_counter() - start > 30:
                    raise RuntimeError("not delivered within 30 s")
                time.sleep(0.0005)
            delivery_latencies.append(time.perf_counter() - start)
            if not idler.exists.wait(30):
                raise RuntimeError("no IDLE notification within 30 s")
            idle_latencies.append(time.perf_counter() - start)
    idler.close()
    return idle_latencies, delivery_latencies


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def creation_rate(relay: LocalRelay, accounts: int, clients: int) -> float:
    """New accounts per second through real IMAP logins from parallel clients."""
    import imaplib

    domain = relay.config.chatmail.mail_domain
    batch = [random_credentials(domain) for _ in range(accounts)]

    def login(credentials: tuple[str, str]) -> None:
        imap = imaplib.IMAP4_SSL("127.0.0.1", relay.dovecot.imaps_port, ssl_context=TLS)
        imap.login(*credentials)
        imap.logout()

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(login, batch))
    elapsed = time.perf_counter() - start
    mailboxes = Path(relay.config.chatmail.mailboxes_dir)
    created = sum((mailboxes / addr / "password").exists() for addr, _ in batch)
    if created != accounts:
        raise RuntimeError(f"only {created} of {accounts} accounts exist")
    return accounts / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200, help="per configuration")
    parser.add_argument("--batch", type=int, default=10, help="at most the rate-limit burst")
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    roots = [stack_dir("bench-relay-"), stack_dir("bench-relay-")]
    relays = {
        "with milter": LocalRelay(roots[0], config_sections={"auth": BENCH_AUTH}),
        "without milter": LocalRelay(roots[1], milter=False, config_sections={"auth": BENCH_AUTH}),
    }
    idle: dict[str, list[float]] = {name: [] for name in relays}
    delivery: dict[str, list[float]] = {name: [] for name in relays}
    try:
        for relay in relays.values():
            relay.start()
        for relay in relays.values():
            latency_run(relay, 3)  # warm up: first logins, connection caches
        done = 0
        while done < args.messages:
            size = min(args.batch, args.messages - done)
            for name, relay in relays.items():
                idle_run, delivery_run = latency_run(relay, size)
                idle[name] += idle_run
                delivery[name] += delivery_run
            done += size
        rate = creation_rate(relays["with milter"], args.accounts, args.clients)
    finally:
        for relay in relays.values():
            relay.stop()
        for root in roots:
            shutil.rmtree(root, ignore_errors=True)
    print(f"messages per configuration: {args.messages} (batches of {args.batch}, alternating)")
    for title, results in (("submission -> IMAP IDLE", idle), ("submission -> Maildir", delivery)):
        print(title)
        for name, values in results.items():
            print(
                f"  {name:>15}: p50 {percentile(values, 0.5) * 1000:7.1f} ms"
                f"  p99 {percentile(values, 0.99) * 1000:7.1f} ms"
                f"  mean {statistics.mean(values) * 1000:7.1f} ms"
            )
        ratio = percentile(results["with milter"], 0.5) / percentile(results["without milter"], 0.5)
        print(f"  p50 ratio with/without milter: {ratio:.2f}")
    print(f"account creation through IMAP logins: {rate:.1f} accounts/s ({args.clients} clients)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
