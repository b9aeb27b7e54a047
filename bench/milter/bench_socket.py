"""Benchmark 2: the milter alone over its socket, against a null pymilter milter baseline.

Speaks the milter protocol itself (miltproto.py), pipelining each message's commands:
verdicts per second and latency percentiles for ~6 KB and ~10 MB encrypted messages, the
milter's resident memory after a warm-up and after 100,000 distinct senders, and its peak.

    cd /tmp && /work/main/.venv/bin/python /work/main/bench/milter/bench_socket.py

(Run from a directory that is not the repository root.)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "testkit"))  # the harness package

import messages
from harness import REPO, VENV_BIN
from miltproto import MilterClient

HERE = Path(__file__).resolve().parent


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in KiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


def start(argv: list[str], socket: Path, workdir: Path) -> subprocess.Popen:
    with open(workdir / "milter.log", "ab") as log:
        proc = subprocess.Popen(argv, cwd=workdir, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 20
    while not socket.exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"milter did not start: {(workdir / 'milter.log').read_text()}")
        time.sleep(0.05)
    return proc


def run_load(
    socket: Path, count: int, size: int, clients: int, sender_prefix: str, per_connection: int
) -> dict[str, float]:
    """`count` messages of `size` bytes from `clients` parallel connections; distinct senders."""
    body = messages.body(size)
    latencies: list[float] = []
    verdicts: dict[str, int] = {}
    lock = threading.Lock()

    def worker(index: int) -> None:
        local: list[float] = []
        counts: dict[str, int] = {}
        client = MilterClient(str(socket))
        sent_on_conn = 0
        for n in range(index, count, clients):
            if sent_on_conn == per_connection:
                client.close()
                client = MilterClient(str(socket))
                sent_on_conn = 0
            sender = f"{sender_prefix}{n}@chat.example"
            packets = MilterClient.message_packets(
                sender,
                ["bob123456@chat.example"],
                messages.headers(sender),
                body,
                sender,
                client.protocol,
            )
            verdict, seconds = client.send_message(packets)
            sent_on_conn += 1
            counts[verdict] = counts.get(verdict, 0) + 1
            local.append(seconds)
        client.close()
        with lock:
            latencies.extend(local)
            for key, value in counts.items():
                verdicts[key] = verdicts.get(key, 0) + value

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "messages": count,
        "bytes_per_message": len(body),
        "seconds": round(elapsed, 3),
        "verdicts_per_s": round(count / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 2),
        "verdicts": verdicts,
    }


def bench_one(name: str, argv: list[str], socket: Path, workdir: Path, args) -> dict:
    proc = start(argv, socket, workdir)
    try:
        result: dict = {"milter": name}
        warm = run_load(socket, args.warmup, 6000, args.clients, "warm", args.per_connection)
        result["rss_after_warmup_kb"] = memory_kb(proc.pid)["VmRSS"]
        # the distinct senders in four slices, resident memory after each
        slices, checkpoints = [], []
        for part in range(4):
            count = args.senders // 4
            slices.append(
                run_load(socket, count, 6000, args.clients, f"user{part}-", args.per_connection)
            )
            checkpoints.append(memory_kb(proc.pid)["VmRSS"])
        result["small"] = {
            "messages": sum(s["messages"] for s in slices),
            "bytes_per_message": slices[0]["bytes_per_message"],
            "seconds": round(sum(s["seconds"] for s in slices), 3),
            "verdicts_per_s": round(
                sum(s["messages"] for s in slices) / sum(s["seconds"] for s in slices), 1
            ),
            "p50_ms": statistics.median(s["p50_ms"] for s in slices),
            "p99_ms_worst_quarter": max(s["p99_ms"] for s in slices),
            "warmup_verdicts_per_s": warm["verdicts_per_s"],
        }
        result["rss_after_each_quarter_of_senders_kb"] = checkpoints
        result["rss_after_senders_kb"] = checkpoints[-1]
        result["large"] = run_load(socket, args.large, 10_000_000, 1, "big", 1000)
        mem = memory_kb(proc.pid)
        result["rss_end_kb"] = mem["VmRSS"]
        result["peak_rss_kb"] = mem["VmHWM"]
        return result
    finally:
        proc.terminate()
        proc.wait(10)
        socket.unlink(missing_ok=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--senders", type=int, default=100_000, help="6 KB messages, 1 per sender")
    parser.add_argument("--warmup", type=int, default=20_000)
    parser.add_argument("--large", type=int, default=20, help="10 MB messages")
    parser.add_argument("--clients", type=int, default=4, help="parallel milter connections")
    parser.add_argument(
        "--per-connection", type=int, default=50, help="messages per milter connection"
    )
    args = parser.parse_args()
    if Path.cwd() == REPO:
        sys.exit("run from another directory: the repository root shadows pymilter's module")
    workdir = Path(tempfile.mkdtemp(prefix="bench-milter-"))
    (workdir / "mailboxes").mkdir()
    config = workdir / "chatmail.ini"
    config.write_text(
        "[chatmail]\nmail_domain = chat.example\n"
        f"mailboxes_dir = {workdir / 'mailboxes'}\nlog_level = warning\n"
        f"[milter]\nsocket = {workdir / 'milter.sock'}\n"
    )
    ours = bench_one(
        "chatmail-milter",
        [str(VENV_BIN / "chatmail-milter"), "--config", str(config), "serve"],
        workdir / "milter.sock",
        workdir,
        args,
    )
    null = bench_one(
        "null pymilter milter (baseline)",
        [str(VENV_BIN / "python"), str(HERE / "null_milter.py"), f"unix:{workdir / 'null.sock'}"],
        workdir / "null.sock",
        workdir,
        args,
    )
    report = {
        "command": " ".join([sys.executable, *sys.argv]),
        "cpus": os.cpu_count(),
        "chatmail_milter": ours,
        "baseline_null_milter": null,
        "ratio_small_verdicts_per_s": round(
            ours["small"]["verdicts_per_s"] / null["small"]["verdicts_per_s"], 3
        ),
        "ratio_large_verdicts_per_s": round(
            ours["large"]["verdicts_per_s"] / null["large"]["verdicts_per_s"], 3
        ),
        "rss_growth_over_senders_kb": ours["rss_after_senders_kb"] - ours["rss_after_warmup_kb"],
        "targets": {
            "peak_rss_under_80_mb": ours["peak_rss_kb"] < 80 * 1024,
            "rss_flat_over_100k_senders (growth < 2 MB)": ours["rss_after_senders_kb"]
            - ours["rss_after_warmup_kb"]
            < 2048,
        },
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
