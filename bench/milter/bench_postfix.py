"""Benchmark 1: Postfix throughput with the milter against the same Postfix without it.

A loopback Postfix rendered from the templates (testkit/harness), discarding after queueing.
8 client processes send 2,000 encrypted messages of about 6 KB in all, one SMTP session each;
the same run measures Postfix without `smtpd_milters` (baseline) and with chatmail-milter
(socket-activated as its unit says), alternating, and prints the ratio (target >= 0.9).

    cd /tmp && /work/main/.venv/bin/python /work/main/bench/milter/bench_postfix.py

`--port submission` uses the authenticated submission port (STARTTLS + SASL via Dovecot with
a passwd-file; outgoing rules, rate limit raised for the run); the default, port 25, applies
the incoming rules. Run as root (Postfix), from a directory that is not the repository root.

`--dkim` adds the DKIM runs: on port 25 every message carries a valid signature of its sender's
domain (`sender.test`, its key served by a real nsd on 127.53.0.1) and the milter runs once with
`[dkim] verify = no` and once with `verify = yes`; on submission the milter runs with `sign = no`
and `sign = yes`. The milter's CPU time per message is read from /proc for each run; the DKIM
CPU per message is the difference between the two in each round (the median of the rounds).
`--port both` runs port 25, then submission, in one invocation, and prints the DKIM figures of
both side by side (`"dkim"`: CPU per message for verification and signing, and the throughput
of the milter with DKIM as a ratio to the milter without it):

    cd /tmp && /work/main/.venv/bin/python /work/main/bench/milter/bench_postfix.py \\
        --rounds 3 --null-milter --dkim --port both

`--opendkim` also measures the other design: chatmail-milter without DKIM plus Debian's
OpenDKIM as a second milter doing the same DKIM work (verifying on port 25, signing on
submission).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import smtplib
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "testkit"))  # the harness package

import messages  # noqa: E402
from harness import MAIL_USER, REPO, VENV_BIN, stack_dir  # noqa: E402
from harness.activation import ActivatedService  # noqa: E402
from harness.dovecot import Dovecot  # noqa: E402
from harness.fixtures import stack_config  # noqa: E402
from harness.messages import dkim_sign  # noqa: E402
from harness.nameserver import NameServer  # noqa: E402
from harness.postfix import Postfix  # noqa: E402

from chatmail_services.dkimkey import dkim_record_value, generate_key, public_key_b64  # noqa: E402

PASSWORD = "benchmark-password"


SENDER_DOMAIN = "sender.test"
SELECTOR = "chatmail"
NAMESERVER = ("127.53.0.1", 53)


def user(index: int, domain: str = "chat.example") -> str:
    return f"bench{index:04d}@{domain}"


def client(args: tuple[str, int, int, int, int, bytes | None]) -> list[float]:
    """One SMTP session sending `count` messages; returns per-message seconds.

    With a `sender_key` (port 25, DKIM runs) the sender is of SENDER_DOMAIN and the message
    carries that domain's DKIM signature, made once per session.
    """
    mode, port, index, count, size, sender_key = args
    sender = user(index) if mode == "submission" else user(index, SENDER_DOMAIN)
    body = messages.full_message(sender, size)
    if sender_key is not None:
        body = dkim_sign(body, SENDER_DOMAIN, SELECTOR, sender_key)
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


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of the processes (and their waited-for children) so far."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return total / tick


def measure(
    mode: str,
    postfix: Postfix,
    total: int,
    clients: int,
    size: int,
    sender_key: bytes | None = None,
    milter_pids: list[int] | None = None,
) -> dict:
    port = postfix.submission_port if mode == "submission" else postfix.smtp_port
    per_client = total // clients
    jobs = [(mode, port, i, per_client, size, sender_key) for i in range(clients)]
    cpu_before = cpu_seconds(milter_pids) if milter_pids else 0.0
    start = time.perf_counter()
    with multiprocessing.Pool(clients) as pool:
        results = pool.map(client, jobs)
    elapsed = time.perf_counter() - start
    latencies = sorted(t for r in results for t in r)
    result = {
        "messages": len(latencies),
        "seconds": round(elapsed, 3),
        "messages_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
    }
    if milter_pids:
        cpu = cpu_seconds(milter_pids) - cpu_before
        result["milter_cpu_ms_per_message"] = round(cpu * 1000 / len(latencies), 3)
    return result


def sender_domain_dns() -> tuple[bytes, NameServer]:
    """A DKIM key for SENDER_DOMAIN and a real nsd serving its public half."""
    root = stack_dir("bench-milter-dns-")
    key = root / "sender.private"
    generate_key(key)
    record = dkim_record_value(public_key_b64(key))
    quoted = " ".join(f'"{record[i : i + 255]}"' for i in range(0, len(record), 255))
    zone = f"{SELECTOR}._domainkey.{SENDER_DOMAIN}. IN TXT {quoted}\n"
    server = NameServer(root, NAMESERVER[0], {SENDER_DOMAIN: zone}).start()
    return key.read_bytes(), server


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


OPENDKIM_CONF = """\
Syslog no
Background no
Mode {mode}
Socket local:{socket}
UMask 007
UserID postfix
PidFile {dir}/opendkim.pid
Domain chat.example
Selector {selector}
KeyFile {key}
Canonicalization relaxed/simple
OversignHeaders From,Reply-To,Subject,Date,To,Cc,In-Reply-To,References,Autocrypt
Nameservers {nameserver}
On-Default accept
RequireSafeKeys false
"""


def start_opendkim(root: Path, postfix: Postfix, mode: str, key: Path) -> subprocess.Popen:
    """Debian's OpenDKIM as a second milter in the queue directory: v(erify) or s(ign).

    Its configuration lives in /run: OpenDKIM refuses a file below a world-writable /tmp.
    """
    directory = Path(tempfile.mkdtemp(prefix="bench-opendkim-", dir="/run"))
    socket = postfix.queue / "opendkim" / "opendkim.sock"
    socket.parent.mkdir(exist_ok=True)
    shutil.chown(socket.parent, "postfix", "postfix")
    shutil.chown(key, "postfix", "postfix")
    conf = directory / "opendkim.conf"
    conf.write_text(
        OPENDKIM_CONF.format(
            mode=mode,
            socket=socket,
            dir=directory,
            selector=SELECTOR,
            key=key,
            nameserver=NAMESERVER[0],
        )
    )
    log = open(directory / "opendkim.log", "ab")  # noqa: SIM115 (lives as long as the process)
    process = subprocess.Popen(["opendkim", "-f", "-x", str(conf)], stdout=log, stderr=log)
    deadline = time.monotonic() + 15
    while not socket.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError((directory / "opendkim.log").read_text())
        time.sleep(0.05)
    return process


def run_config(
    mode: str,
    milter_kind: str | None,
    args: argparse.Namespace,
    dkim_on: bool = False,
    opendkim: bool = False,
    sender_key: bytes | None = None,
) -> dict:
    with_milter = milter_kind is not None
    root = stack_dir("bench-milter-postfix-")
    try:
        key = root / "dkim.private"
        generate_key(key, MAIL_USER)
        config = stack_config(
            root,
            milter={
                "max_user_send_per_minute": 1_000_000,
                "max_user_send_burst_size": 1_000_000,
            },
            chatmail={"log_level": "warning"},
            dkim={
                "key_file": key,
                "selector": SELECTOR,
                "resolver": f"{NAMESERVER[0]}:{NAMESERVER[1]}",
                "sign": "yes" if dkim_on and mode == "submission" else "no",
                "verify": "yes" if dkim_on and mode != "submission" else "no",
            },
        )
        socket = Path(config.milter.socket)
        settings = {}
        if opendkim:
            settings["smtpd_milters"] = "unix:chatmail/milter.sock, unix:opendkim/opendkim.sock"
        postfix = Postfix(
            root,
            config,
            milter_socket=socket if with_milter else None,
            discard=True,
            settings=settings,
        )
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
        opendkim_process = None
        if opendkim:
            opendkim_process = start_opendkim(
                root, postfix, "s" if mode == "submission" else "v", key
            )
        try:
            with dovecot, postfix:
                pids = [milter.pid] if milter and milter.pid else []
                if opendkim_process:
                    pids.append(opendkim_process.pid)
                warm = (mode, postfix, args.clients * 5, args.clients, args.size, sender_key)
                measure(*warm)  # warm-up (and the key cache)
                result = measure(
                    mode, postfix, args.messages, args.clients, args.size, sender_key, pids
                )
                log = postfix.log_text()
                result["milter_rejects_in_postfix_log"] = log.count("milter-reject")
                if result["milter_rejects_in_postfix_log"]:
                    raise RuntimeError("the milter refused benchmark mail:\n" + log[-3000:])
        finally:
            if opendkim_process:
                opendkim_process.terminate()
                opendkim_process.wait(10)
                shutil.rmtree(Path(opendkim_process.args[-1]).parent, ignore_errors=True)
            if milter:
                result_log = milter.log_text()
                milter.close()
                if "Traceback" in result_log:
                    raise RuntimeError(result_log)
        return result
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_rounds(port: str, args: argparse.Namespace, sender_key: bytes | None) -> list[dict]:
    """`args.rounds` rounds of the configurations, alternating, on one port. Only port 25's
    messages carry the sender domain's signature."""
    sender_key = sender_key if port == "smtp" else None
    rounds = []
    for _ in range(args.rounds):
        entry = {"without_milter": run_config(port, None, args, sender_key=sender_key)}
        if args.null_milter:
            entry["null_milter"] = run_config(port, "null", args, sender_key=sender_key)
        if args.c_null_milter:
            entry["c_null_milter"] = run_config(port, "c-null", args, sender_key=sender_key)
        entry["with_milter"] = run_config(port, "chatmail", args, sender_key=sender_key)
        if args.dkim:
            entry["with_milter_dkim"] = run_config(
                port, "chatmail", args, dkim_on=True, sender_key=sender_key
            )
        if args.opendkim:
            entry["with_milter_and_opendkim"] = run_config(
                port, "chatmail", args, opendkim=True, sender_key=sender_key
            )
        rounds.append(entry)
    return rounds


def summary(port: str, rounds: list[dict]) -> dict:
    """Medians of the rounds of one port and the ratios."""

    def median(name: str, key: str = "messages_per_s") -> float:
        return statistics.median(r[name][key] for r in rounds)

    base, ours = median("without_milter"), median("with_milter")
    report: dict = {
        "port": port,
        "rounds": rounds,
        "median_messages_per_s_without_milter": base,
        "median_messages_per_s_with_milter": ours,
        "ratio": round(ours / base, 3),
        "target_ratio_at_least_0.9": ours / base >= 0.9,
        "milter_cpu_ms_per_message": median("with_milter", "milter_cpu_ms_per_message"),
    }
    for name in ("null_milter", "c_null_milter"):
        if name in rounds[0]:
            report[f"median_messages_per_s_{name}"] = median(name)
            report[f"ratio_{name}"] = round(median(name) / base, 3)
    for name in ("with_milter_dkim", "with_milter_and_opendkim"):
        if name in rounds[0]:
            rate, cpu = median(name), median(name, "milter_cpu_ms_per_message")
            report[f"median_messages_per_s_{name}"] = rate
            report[f"ratio_{name}_to_with_milter"] = round(rate / ours, 3)
            report[f"ratio_{name}_to_without_milter"] = round(rate / base, 3)
            report[f"milter_cpu_ms_per_message_{name}"] = cpu
            # paired in each round (the baseline of the same round), then the median
            extra = [
                r[name]["milter_cpu_ms_per_message"] - r["with_milter"]["milter_cpu_ms_per_message"]
                for r in rounds
            ]
            report[f"dkim_cpu_ms_per_message_{name}_rounds"] = [round(x, 3) for x in extra]
            report[f"dkim_cpu_ms_per_message_{name}"] = round(statistics.median(extra), 3)
            ratios = [
                r[name]["messages_per_s"] / r["with_milter"]["messages_per_s"] for r in rounds
            ]
            report[f"ratio_{name}_to_with_milter_rounds"] = [round(x, 3) for x in ratios]
    if "with_milter_dkim" in rounds[0]:
        report["target_dkim_costs_at_most_10_percent"] = (
            report["ratio_with_milter_dkim_to_with_milter"] >= 0.9
        )
    return report


def dkim_summary(reports: dict[str, dict]) -> dict:
    """The DKIM figures of both ports side by side (verification on 25, signing on submission)."""
    out = {}
    for port, job in (("smtp", "verify"), ("submission", "sign")):
        report = reports.get(port, {})
        if "dkim_cpu_ms_per_message_with_milter_dkim" in report:
            out[f"{job}_dkim_cpu_ms_per_message"] = report[
                "dkim_cpu_ms_per_message_with_milter_dkim"
            ]
            out[f"{job}_ratio_milter_with_dkim_to_without"] = report[
                "ratio_with_milter_dkim_to_with_milter"
            ]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--size", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=2, help="alternating baseline/milter runs")
    parser.add_argument(
        "--port",
        choices=["smtp", "submission", "both"],
        default="smtp",
        help="both: port 25 (verification), then submission (signing), in one run",
    )
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
    parser.add_argument(
        "--dkim",
        action="store_true",
        help="also measure the milter with DKIM (verify on port 25, sign on submission)",
    )
    parser.add_argument(
        "--opendkim",
        action="store_true",
        help="also measure chatmail-milter without DKIM plus OpenDKIM as a second milter",
    )
    args = parser.parse_args()
    if Path.cwd() == REPO:
        sys.exit("run from another directory: the repository root shadows pymilter's module")
    if args.c_null_milter:
        C_NULL_MILTER.append(build_c_null_milter())
    ports = ["smtp", "submission"] if args.port == "both" else [args.port]
    sender_key = None
    nameserver = None
    if (args.dkim or args.opendkim) and "smtp" in ports:
        sender_key, nameserver = sender_domain_dns()
    reports = {}
    try:
        for port in ports:
            reports[port] = summary(port, run_rounds(port, args, sender_key))
    finally:
        if nameserver is not None:
            nameserver.stop()
            shutil.rmtree(nameserver.dir.parent, ignore_errors=True)
        if C_NULL_MILTER:
            shutil.rmtree(C_NULL_MILTER[0].parent, ignore_errors=True)
    command = " ".join([sys.executable, *sys.argv])
    if len(ports) == 1:
        report = {"command": command, **reports[ports[0]]}
    else:
        report = {"command": command, **reports}
    if args.dkim:
        report["dkim"] = dkim_summary(reports)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
