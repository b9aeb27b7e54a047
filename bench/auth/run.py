#!/usr/bin/env python3
"""Benchmark: chatmail-auth against Dovecot's own C dict server (file backend), same records.

    .venv/bin/python bench/auth/run.py [--lookups N] [--pairs P] [--accounts A]

1. Starts chatmail-auth under systemd-socket-activate, then creates A accounts through it by
   first logins from 16 concurrent clients: that is the creations/s figure.
2. Writes the same passdb records (key, JSON value) into a `file:` dict and starts Dovecot's
   dict service with its own base_dir, by default with 16 pre-started processes (one per
   client): its best setting here. With Dovecot's defaults the dict processes pile up to
   process_limit (100) and its rate falls several-fold (`--dict-processes 0` shows it).
3. Runs P pairs of N passdb lookups of existing accounts against each server, one connection
   per lookup (as Dovecot 2.3 does), 16 concurrent clients, alternating which server goes
   first. The load generator is a small epoll C program (bench/auth/dictclient.c), so the
   client costs little of the 2 shared cores.
4. Prints lookups/s of both, the ratio per pair and overall, p50/p99 latency, and
   chatmail-auth's resident memory (VmRSS, VmHWM) after all its lookups.
Run it as root on an otherwise idle machine; it needs gcc and dovecot-core.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "testkit"))  # the harness package

from harness import VENV_BIN  # noqa: E402

CHATMAIL_AUTH = VENV_BIN / "chatmail-auth"
DOMAIN = "bench.example"

DOVECOT_CONF = """\
base_dir = {root}/dovecot/run
state_dir = {root}/dovecot/state
log_path = {root}/dovecot/dovecot.log
protocols =
listen = 127.0.0.1
ssl = no
dict {{
  auth = file:{root}/dict.txt
}}
service dict {{
{tuning}  unix_listener dict {{
    mode = 0666
  }}
}}
"""


def escape_request(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def run_client(client: Path, sock: Path, requests: Path, conc: int, total: int) -> dict:
    out = subprocess.run(
        [str(client), str(sock), str(requests), str(conc), str(total)],
        capture_output=True, text=True, check=True, timeout=3600,
    )  # fmt: skip
    ok, failed, elapsed, p50, p99, mx = out.stdout.split()
    return {
        "ok": int(ok),
        "failed": int(failed),
        "elapsed": float(elapsed),
        "rate": int(ok) / float(elapsed),
        "p50_ms": float(p50) / 1000,
        "p99_ms": float(p99) / 1000,
        "max_ms": float(mx) / 1000,
    }


def wait_for(path: Path, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"{path} did not appear")
        time.sleep(0.05)


def rss_kib(pid: int) -> tuple[int, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lookups", type=int, default=100_000, help="lookups per run (N)")
    ap.add_argument("--pairs", type=int, default=4, help="alternating pairs of runs (P)")
    ap.add_argument("--accounts", type=int, default=2000, help="accounts created first (A)")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument(
        "--dict-processes",
        type=int,
        default=16,
        help="Dovecot dict process_limit = process_min_avail (0: Dovecot's defaults, which "
        "let up to 100 processes pile up and contend on the accept queue)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="chatmail-bench-auth-"))
    root.chmod(0o755)
    procs: list[subprocess.Popen] = []
    try:
        client = root / "dictclient"
        subprocess.run(["gcc", "-O2", "-o", str(client), str(HERE / "dictclient.c")], check=True)
        mailboxes = root / "mailboxes"
        mailboxes.mkdir()
        ini = root / "chatmail.ini"
        ini.write_text(
            f"[chatmail]\nmail_domain = {DOMAIN}\nmailboxes_dir = {mailboxes}\n"
            "log_level = warning\n"
            f"[auth]\nnocreate_file = {root}/nocreate\n"
            # the benchmark itself loads the machine: do not let headroom refuse creation
            "max_load_1m = 10000\nmin_available_memory = 0\nmin_free_disk = 0\n"
        )
        ours_sock = root / "auth.sock"
        with open(root / "auth.log", "wb") as log:
            ours = subprocess.Popen(
                ["systemd-socket-activate", "-l", str(ours_sock), "--",
                 str(CHATMAIL_AUTH), "--config", str(ini), "serve"],
                cwd=root, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        procs.append(ours)
        wait_for(ours_sock)

        chars = string.ascii_lowercase + string.digits
        accounts = []
        for _ in range(args.accounts):
            user = "".join(secrets.choice(chars) for _ in range(9)) + "@" + DOMAIN
            password = "".join(secrets.choice(string.ascii_letters) for _ in range(20))
            accounts.append((user, password))
        requests = root / "requests.txt"
        with open(requests, "w") as f:
            for user, password in accounts:
                key = f'shared/passdb/{password}"{user}'
                f.write(escape_request(f"H3\t2\t0\t\tauth\nL{key}\t{user}\n") + "\n")

        print(f"creating {args.accounts} accounts by first login, {args.concurrency} clients")
        created = run_client(client, ours_sock, requests, args.concurrency, args.accounts)
        print(
            f"  first-login creations: {created['rate']:.0f}/s "
            f"(p50 {created['p50_ms']:.1f} ms, p99 {created['p99_ms']:.1f} ms, "
            f"failed {created['failed']})"
        )

        # the same records for Dovecot's file dict: key line, value line
        with open(root / "dict.txt", "w") as f:
            for user, password in accounts:
                stored = (mailboxes / user / "password").read_text().strip()
                value = {
                    "password": stored,
                    "home": str(mailboxes / user),
                    "uid": os.getuid(),
                    "gid": os.getgid(),
                    "quota_rule": "*:storage=512000",
                    "quota_storage_size": 524288000,
                }
                f.write(f'shared/passdb/{password}"{user}\n')
                f.write(json.dumps(value, separators=(",", ":")) + "\n")
        (root / "dict.txt").chmod(0o644)
        (root / "dovecot").mkdir()
        conf = root / "dovecot" / "dovecot.conf"
        dict_procs = args.dict_processes
        tuning = (
            f"  process_limit = {dict_procs}\n  process_min_avail = {dict_procs}\n"
            if dict_procs
            else ""
        )
        conf.write_text(DOVECOT_CONF.format(root=root, tuning=tuning))
        with open(root / "dovecot" / "stdout.log", "wb") as log:
            subprocess.run(
                ["dovecot", "-c", str(conf)], check=True, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        theirs_sock = root / "dovecot" / "run" / "dict"
        wait_for(theirs_sock)

        # warm-up both
        run_client(client, ours_sock, requests, args.concurrency, 2000)
        run_client(client, theirs_sock, requests, args.concurrency, 2000)
        ours_total = 2000 + args.accounts

        rows = []
        for pair in range(args.pairs):
            order = ["ours", "dovecot"] if pair % 2 == 0 else ["dovecot", "ours"]
            result = {}
            for name in order:
                sock = ours_sock if name == "ours" else theirs_sock
                result[name] = run_client(client, sock, requests, args.concurrency, args.lookups)
                if result[name]["failed"]:
                    print(f"  {name}: {result[name]['failed']} failed lookups!")
            ours_total += args.lookups
            ratio = result["ours"]["rate"] / result["dovecot"]["rate"]
            rows.append((result, ratio))
            print(
                f"pair {pair + 1} ({order[0]} first): chatmail-auth {result['ours']['rate']:.0f}/s"
                f" p99 {result['ours']['p99_ms']:.2f} ms | dovecot dict "
                f"{result['dovecot']['rate']:.0f}/s p99 {result['dovecot']['p99_ms']:.2f} ms"
                f" | ratio {ratio:.2f}"
            )
        rss, hwm = rss_kib(ours.pid)
        ours_rate = sum(r["ours"]["ok"] for r, _ in rows) / sum(
            r["ours"]["elapsed"] for r, _ in rows
        )
        their_rate = sum(r["dovecot"]["ok"] for r, _ in rows) / sum(
            r["dovecot"]["elapsed"] for r, _ in rows
        )
        print("summary")
        print(f"  lookups/s chatmail-auth {ours_rate:.0f}, dovecot dict {their_rate:.0f}")
        print(
            f"  ratio overall {ours_rate / their_rate:.2f}, median of pairs "
            f"{statistics.median(r for _, r in rows):.2f} (target >= 0.8)"
        )
        print(
            f"  p99 chatmail-auth: worst run {max(r['ours']['p99_ms'] for r, _ in rows):.2f} ms"
            f", median {statistics.median(r['ours']['p99_ms'] for r, _ in rows):.2f} ms"
            " (target < 5 ms)"
        )
        print(
            f"  chatmail-auth after {ours_total} lookups: VmRSS {rss / 1024:.1f} MiB, "
            f"VmHWM {hwm / 1024:.1f} MiB (target < 40 MB)"
        )
        print(f"  first-login creations/s: {created['rate']:.0f}")
        return 0
    finally:
        conf = root / "dovecot" / "dovecot.conf"
        if (root / "dovecot" / "run" / "master.pid").exists():
            subprocess.run(["dovecot", "-c", str(conf), "stop"], capture_output=True)
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
