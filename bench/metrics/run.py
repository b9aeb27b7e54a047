#!/usr/bin/env python3
"""Benchmark: the milter's and chatmail-auth's throughput with metrics on and off, in one run.

    cd /tmp && /work/main/.venv/bin/python /work/main/bench/metrics/run.py [--pairs P]

Two instances of each service run side by side: one with `[chatmail] metrics_dir` set and
`metrics_interval = 1` (the file rewritten every second, 15 times as often as the default),
one with `metrics_dir` empty (no metrics at all). The milter does not sign ([dkim] sign = no):
without the signature's cost per message, the metrics' share is the largest. P pairs of runs
alternate which instance goes first: the milter gets N encrypted ~6 KB messages from 4
connections (bench/milter's protocol client), chatmail-auth N passdb lookups from 16 clients
(bench/auth's C client).
Prints each pair's rates and ratio (on / off), the overall ratio, and what the metrics file
counted (it must equal what was sent). Run from a directory that is not the repository root.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import secrets
import shutil
import string
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "testkit"))  # the harness package
sys.path.insert(0, str(ROOT / "bench" / "milter"))  # bench_socket, messages, miltproto

import bench_socket  # noqa: E402
from harness import VENV_BIN  # noqa: E402


def load_auth_bench():
    spec = importlib.util.spec_from_file_location("bench_auth", ROOT / "bench" / "auth" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_config(path: Path, mailboxes: Path, metrics: str, extra: str = "") -> Path:
    path.write_text(
        f"[chatmail]\nmail_domain = chat.example\nmailboxes_dir = {mailboxes}\n"
        f"log_level = warning\nmetrics_dir = {metrics}\nmetrics_interval = 1\n{extra}"
    )
    return path


def samples(path: Path) -> dict[str, float]:
    out = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def pairs_of(runs: int, measure) -> list[dict]:
    rows = []
    for pair in range(runs):
        order = ["on", "off"] if pair % 2 == 0 else ["off", "on"]
        result = {name: measure(name) for name in order}
        result["ratio"] = result["on"] / result["off"]
        result["first"] = order[0]
        rows.append(result)
        print(
            f"  pair {pair + 1} ({order[0]} first): on {result['on']:.0f}/s, "
            f"off {result['off']:.0f}/s, ratio {result['ratio']:.3f}"
        )
    return rows


def bench_milter(work: Path, args) -> dict:
    mailboxes = work / "mailboxes"
    metrics = work / "metrics"
    procs, sockets = {}, {}
    for name, directory in (("on", str(metrics)), ("off", "")):
        sockets[name] = work / f"milter-{name}.sock"
        config = write_config(
            work / f"milter-{name}.ini",
            mailboxes,
            directory,
            f"[milter]\nsocket = {sockets[name]}\n[dkim]\nsign = no\n",
        )
        argv = [str(VENV_BIN / "chatmail-milter"), "--config", str(config), "serve"]
        procs[name] = bench_socket.start(argv, sockets[name], work)
    try:
        for name in ("on", "off"):
            bench_socket.run_load(sockets[name], 2000, 6000, 4, f"warm{name}", 50)
        sent = {"on": 2000, "off": 2000}

        def measure(name: str) -> float:
            sent[name] += args.messages
            run = bench_socket.run_load(sockets[name], args.messages, 6000, 4, name, 50)
            return run["verdicts_per_s"]

        print(f"milter: {args.messages} messages of ~6 KB per run, 4 connections")
        rows = pairs_of(args.pairs, measure)
    finally:
        for proc in procs.values():
            proc.terminate()  # the final write of the metrics file
            proc.wait(10)
    counted = samples(metrics / "chatmail-milter.prom")
    accepted = counted['chatmail_milter_messages_total{outcome="accepted",code="250"}']
    return {"rows": rows, "sent_to_on": sent["on"], "counted_accepted": accepted}


def bench_auth(work: Path, args) -> dict:
    auth = load_auth_bench()
    client = work / "dictclient"
    subprocess.run(
        ["gcc", "-O2", "-o", str(client), str(ROOT / "bench/auth/dictclient.c")], check=True
    )
    mailboxes = work / "auth-mailboxes"
    mailboxes.mkdir()
    metrics = work / "metrics"
    headroom = "[auth]\nmax_load_1m = 10000\nmin_available_memory = 0\nmin_free_disk = 0\n"
    socks, procs = {}, []
    for name, directory in (("on", str(metrics)), ("off", "")):
        config = write_config(work / f"auth-{name}.ini", mailboxes, directory, headroom)
        socks[name] = work / f"auth-{name}.sock"
        log = open(work / f"auth-{name}.log", "wb")  # noqa: SIM115
        procs.append(
            subprocess.Popen(
                [
                    "systemd-socket-activate",
                    "-l",
                    str(socks[name]),
                    "--",
                    str(VENV_BIN / "chatmail-auth"),
                    "--config",
                    str(config),
                    "serve",
                ],
                cwd=work,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        auth.wait_for(socks[name])
    try:
        chars = string.ascii_lowercase + string.digits
        requests = work / "requests.txt"
        with open(requests, "w") as out:
            for _ in range(args.accounts):
                user = "".join(secrets.choice(chars) for _ in range(9)) + "@chat.example"
                password = "".join(secrets.choice(string.ascii_letters) for _ in range(20))
                key = f'shared/passdb/{password}"{user}'
                out.write(auth.escape_request(f"H3\t2\t0\t\tauth\nL{key}\t{user}\n") + "\n")
        auth.run_client(client, socks["on"], requests, 16, args.accounts)  # creates them
        for name in ("on", "off"):
            auth.run_client(client, socks[name], requests, 16, 2000)
        looked_up = {"on": args.accounts + 2000}

        def measure(name: str) -> float:
            run = auth.run_client(client, socks[name], requests, 16, args.lookups)
            if name == "on":
                looked_up["on"] += run["ok"]
            return run["rate"]

        print(f"auth: {args.lookups} passdb lookups per run, 16 clients")
        rows = pairs_of(args.pairs, measure)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
    counted = samples(metrics / "chatmail-auth.prom")
    found = counted['chatmail_auth_passdb_lookups_total{result="found"}']
    return {"rows": rows, "lookups_on": looked_up["on"], "counted_found": found}


def overall(rows: list[dict]) -> float:
    return sum(r["on"] for r in rows) / sum(r["off"] for r in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--messages", type=int, default=5000, help="milter messages per run")
    parser.add_argument("--lookups", type=int, default=20000, help="auth lookups per run")
    parser.add_argument("--accounts", type=int, default=2000)
    args = parser.parse_args()
    if Path.cwd() == ROOT:
        sys.exit("run from another directory: the repository root shadows pymilter's module")
    work = Path(tempfile.mkdtemp(prefix="chatmail-bench-metrics-"))
    try:
        (work / "mailboxes").mkdir()
        (work / "metrics").mkdir()
        milter = bench_milter(work, args)
        auth = bench_auth(work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = {
        "command": " ".join([sys.executable, *sys.argv]),
        "milter_ratio_on_off": round(overall(milter["rows"]), 3),
        "auth_ratio_on_off": round(overall(auth["rows"]), 3),
        "milter_pair_ratios": [round(r["ratio"], 3) for r in milter["rows"]],
        "auth_pair_ratios": [round(r["ratio"], 3) for r in auth["rows"]],
        "milter_sent_to_on": milter["sent_to_on"],
        "milter_counted_accepted": milter["counted_accepted"],
        "auth_lookups_on": auth["lookups_on"],
        "auth_counted_found": auth["counted_found"],
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
