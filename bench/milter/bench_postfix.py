"""Benchmark 1: Postfix throughput with the milter against the same Postfix without it.

A loopback Postfix rendered from docs/templates/ (tests/harness), discarding after queueing.
8 client processes send 2,000 encrypted messages of about 6 KB in all, one SMTP session each;
the same run measures Postfix without `smtpd_milters` (baseline) and with chatmail-milter
(socket-activated as its unit says), alternating, and prints the ratio (target >= 0.9).

    cd /tmp && /work/main/.venv/bin/python /work/main/bench/milter/bench_postfix.py

`--port submission` uses the authenticated submission port (STARTTLS + SASL via Dovecot with
a passwd-file; outgoing rules, rate limit raised for the run); the default, port 25, applies
the incoming rules. Run as root (Postfix), from a directory that is not the repository root.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import smtplib
import ssl
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the harness package (tests/ has no "milter" module)

import messages  # noqa: E402
from harness import MAIL_USER, VENV_BIN, stack_dir  # noqa: E402
from harness.activation import ActivatedService  # noqa: E402
from harness.dovecot import Dovecot  # noqa: E402
from harness.fixtures import stack_config  # noqa: E402
from harness.postfix import Postfix  # noqa: E402

PASSWORD = "benchmark-password"


def user(index: int) -> str:
    return f"bench{index:04d}@chat.example"


def client(args: tuple[str, int, int, int, int]) -> list[float]:
    """One SMTP session sending `count` messages; returns per-message seconds."""
    mode, port, index, count, size = args
    sender = user(index)
    body = messages.full_message(sender, size)
    times = []
    if mode == "submission":
        smtp = smtplib.SMTP("127.0.0.1", port, timeout=120)
        smtp.starttls(context=ssl._create_unverified_context())
        smtp.login(sender, PASSWORD)
    else:
        smtp = smtplib.SMTP("127.0.0.1", port, timeout=120)
    for _ in range(count):
        start = time.perf_counter()
        smtp.sendmail(sender, ["bob123456@chat.example"], body)
        times.append(time.perf_counter() - start)
    smtp.quit()
    return times


def measure(mode: str, postfix: Postfix, total: int, clients: int, size: int) -> dict:
    port = postfix.submission_port if mode == "submission" else postfix.smtp_port
    per_client = total // clients
    jobs = [(mode, port, i, per_client, size) for i in range(clients)]
    start = time.perf_counter()
    with multiprocessing.Pool(clients) as pool:
        results = pool.map(client, jobs)
    elapsed = time.perf_counter() - start
    latencies = sorted(t for r in results for t in r)
    return {
        "messages": len(latencies),
        "seconds": round(elapsed, 3),
        "messages_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
    }


C_NULL_MILTER: list[Path] = []


def build_c_null_milter() -> Path:
    """Compile null_milter.c (libmilter-dev, gcc) into a directory the mail user can read."""
    out = stack_dir("bench-milter-cbin-") / "null_milter"
    subprocess.run(
        ["gcc", "-O2", "-o", str(out), str(HERE / "null_milter.c"), "-lmilter", "-pthread"],
        check=True,
    )
    return out


def milter_argv(kind: str) -> list[str]:
    if kind == "chatmail":
        return [str(VENV_BIN / "chatmail-milter"), "serve"]
    if kind == "c-null":
        return [str(C_NULL_MILTER[0]), "fd:3"]
    # a pymilter milter with the same callbacks that accepts everything (inherent cost)
    return [str(VENV_BIN / "python"), str(HERE / "null_milter.py"), "fd:3"]


def run_config(mode: str, milter_kind: str | None, args: argparse.Namespace) -> dict:
    with_milter = milter_kind is not None
    root = stack_dir("bench-milter-postfix-")
    try:
        config = stack_config(
            root,
            milter={
                "max_user_send_per_minute": 1_000_000,
                "max_user_send_burst_size": 1_000_000,
            },
            chatmail={"log_level": "warning"},
        )
        socket = Path(config.milter.socket)
        postfix = Postfix(root, config, milter_socket=socket if with_milter else None, discard=True)
        passwd = root / "passwd"
        passwd.write_text("".join(f"{user(i)}:{{PLAIN}}{PASSWORD}\n" for i in range(args.clients)))
        dovecot = Dovecot(
            root,
            config,
            passwd_file=passwd,
            lmtp_socket=postfix.lmtp_socket,
            sasl_socket=postfix.sasl_socket,
        )
        milter = None
        if with_milter:
            milter = ActivatedService(
                milter_argv(milter_kind),
                socket,
                log_path=root / "milter.log",
                mode=0o660,
                user=MAIL_USER,
                socket_user=MAIL_USER,
                group="postfix",
                env={"CHATMAIL_CONFIG": config.path},
                cwd=root,
            ).start()
        try:
            with dovecot, postfix:
                measure(mode, postfix, args.clients * 5, args.clients, args.size)  # warm-up
                result = measure(mode, postfix, args.messages, args.clients, args.size)
                log = postfix.log_text()
                result["milter_rejects_in_postfix_log"] = log.count("milter-reject")
        finally:
            if milter:
                result_log = milter.log_text()
                milter.close()
                if "Traceback" in result_log:
                    raise RuntimeError(result_log)
        return result
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--size", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=2, help="alternating baseline/milter runs")
    parser.add_argument("--port", choices=["smtp", "submission"], default="smtp")
    parser.add_argument(
        "--null-milter",
        action="store_true",
        help="also measure a null pymilter milter (what any Python milter costs)",
    )
    parser.add_argument(
        "--c-null-milter",
        action="store_true",
        help="also measure a null milter in C on libmilter (what any milter costs)",
    )
    args = parser.parse_args()
    if Path.cwd() == REPO:
        sys.exit("run from another directory: the repository root shadows pymilter's module")
    if args.c_null_milter:
        C_NULL_MILTER.append(build_c_null_milter())
    rounds = []
    for _ in range(args.rounds):
        entry = {"without_milter": run_config(args.port, None, args)}
        if args.null_milter:
            entry["null_milter"] = run_config(args.port, "null", args)
        if args.c_null_milter:
            entry["c_null_milter"] = run_config(args.port, "c-null", args)
        entry["with_milter"] = run_config(args.port, "chatmail", args)
        rounds.append(entry)
    base = statistics.median(r["without_milter"]["messages_per_s"] for r in rounds)
    ours = statistics.median(r["with_milter"]["messages_per_s"] for r in rounds)
    report: dict = {
        "command": " ".join([sys.executable, *sys.argv]),
        "port": args.port,
        "rounds": rounds,
        "median_messages_per_s_without_milter": base,
        "median_messages_per_s_with_milter": ours,
        "ratio": round(ours / base, 3),
        "target_ratio_at_least_0.9": ours / base >= 0.9,
    }
    if args.null_milter:
        null = statistics.median(r["null_milter"]["messages_per_s"] for r in rounds)
        report["median_messages_per_s_null_milter"] = null
        report["ratio_null_milter"] = round(null / base, 3)
    if args.c_null_milter:
        c_null = statistics.median(r["c_null_milter"]["messages_per_s"] for r in rounds)
        report["median_messages_per_s_c_null_milter"] = c_null
        report["ratio_c_null_milter"] = round(c_null / base, 3)
        shutil.rmtree(C_NULL_MILTER[0].parent, ignore_errors=True)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
