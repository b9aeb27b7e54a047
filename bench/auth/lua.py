#!/usr/bin/env python3
"""Benchmark: Dovecot 2.3 logins through the dict passdb vs the Lua passdb (chatmail-auth.lua).

    .venv/bin/python bench/auth/lua.py [--logins N] [--userdb N] [--rounds R] [--concurrency C]

One chatmail-auth (as the mail user, under systemd-socket-activate) and three Dovecots on
127.0.0.24 in front of it: the dict passdb/userdb (the baseline), the Lua passdb/userdb keeping
one connection per auth worker (what ships), and the Lua one with a new connection per lookup.
It creates A accounts by first logins, then runs R rounds, rotating the order, of
- N AUTH PLAIN logins of existing accounts on Dovecot's auth-client socket (what imap-login and
  Postfix send: passdb lookup plus Dovecot's SHA512-CRYPT check), C concurrent connections;
- N userdb lookups (USER on the auth-userdb socket: the lookup alone, no hash check).
Prints lookups/s and p50/p99 of each, and the ratio Lua / dict. Run as root on an idle machine.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "testkit"))  # the harness package

from harness import MAIL_USER, mail_ids, stack_dir
from harness.authtools import start_auth
from harness.dovecot import Dovecot
from harness.fixtures import stack_config

ADDRESS = "127.0.0.24"
PASSWORD = "bench-password-1"


async def _lines(reader: asyncio.StreamReader, until: bytes) -> bytes:
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("auth socket closed")
        if line.startswith(until):
            return line


async def _worker(kind: str, path: Path, users: list[str], count: int, lat: list[float]) -> int:
    reader, writer = await asyncio.open_unix_connection(str(path))
    failed = 0
    if kind == "login":
        writer.write(b"VERSION\t1\t2\nCPID\t%d\n" % os.getpid())
        await _lines(reader, b"DONE")
    else:
        writer.write(b"VERSION\t1\t0\n")
    for i in range(1, count + 1):
        user = random.choice(users)
        start = time.perf_counter()
        if kind == "login":
            resp = base64.b64encode(f"\0{user}\0{PASSWORD}".encode()).decode()
            writer.write(f"AUTH\t{i}\tPLAIN\tservice=smtp\tsecured\tresp={resp}\n".encode())
            line = await _lines(reader, b"")
            ok = line.startswith(b"OK\t")
        else:
            writer.write(f"USER\t{i}\t{user}\tservice=imap\n".encode())
            line = await _reply(reader)
            ok = line.startswith(b"USER\t")
        lat.append(time.perf_counter() - start)
        failed += not ok
    writer.close()
    return failed


async def _reply(reader: asyncio.StreamReader) -> bytes:
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("auth socket closed")
        if line.split(b"\t", 1)[0] in (b"USER", b"NOTFOUND", b"FAIL"):
            return line


def run(kind: str, path: Path, users: list[str], total: int, conc: int) -> dict[str, float]:
    lat: list[float] = []

    async def main() -> int:
        per = total // conc
        jobs = [_worker(kind, path, users, per, lat) for _ in range(conc)]
        return sum(await asyncio.gather(*jobs))

    start = time.perf_counter()
    failed = asyncio.run(main())
    elapsed = time.perf_counter() - start
    lat.sort()
    return {
        "rate": len(lat) / elapsed,
        "p50": lat[len(lat) // 2] * 1000,
        "p99": lat[int(len(lat) * 0.99)] * 1000,
        "failed": failed,
        "n": len(lat),
        "elapsed": elapsed,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--logins", type=int, default=3000, help="logins per run")
    ap.add_argument("--userdb", type=int, default=10000, help="userdb lookups per run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--accounts", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()

    root = stack_dir("chatmail-bench-lua-")
    config = stack_config(root, chatmail={"log_level": "warning"})
    run_dir = root / "run"
    run_dir.mkdir()
    os.chown(run_dir, *mail_ids())
    auth = start_auth(config, run_dir, user=MAIL_USER)
    fronts: dict[str, Dovecot] = {}
    try:
        for name, kind in (("dict", "dict"), ("lua-kept", "lua"), ("lua-per-lookup", "lua")):
            (root / name).mkdir()
            dovecot = Dovecot(root / name, config, auth_socket=auth.socket_path, auth=kind,
                              address=ADDRESS)  # fmt: skip
            if name == "lua-per-lookup":
                script = dovecot.dir / "chatmail-auth.lua"
                text = script.read_text()
                assert "local KEEP_CONNECTION = true" in text
                script.write_text(text.replace("KEEP_CONNECTION = true", "KEEP_CONNECTION = false"))
            fronts[name] = dovecot.start()
        users = [f"bench{i:04d}@{config.chatmail.mail_domain}" for i in range(args.accounts)]
        created = run("login", fronts["dict"].sasl_socket, users, len(users), 1)
        assert created["failed"] == 0, "account creation failed"
        # warm-up: workers started, connections open
        for dovecot in fronts.values():
            run("login", dovecot.sasl_socket, users, 400, args.concurrency)
            run("userdb", dovecot.base_dir / "auth-userdb", users, 1000, args.concurrency)

        results: dict[tuple[str, str], list[dict[str, float]]] = {}
        names = list(fronts)
        for rnd in range(args.rounds):
            order = names[rnd % 3 :] + names[: rnd % 3]
            for kind, total in (("login", args.logins), ("userdb", args.userdb)):
                for name in order:
                    dovecot = fronts[name]
                    path = dovecot.sasl_socket if kind == "login" else (
                        dovecot.base_dir / "auth-userdb")  # fmt: skip
                    res = run(kind, path, users, total, args.concurrency)
                    assert res["failed"] == 0, (name, kind, res)
                    results.setdefault((kind, name), []).append(res)
                    print(f"round {rnd + 1} {kind:6} {name:15} {res['rate']:7.0f}/s "
                          f"p50 {res['p50']:6.2f} ms p99 {res['p99']:6.2f} ms")  # fmt: skip
        print("summary (all rounds)")
        for kind in ("login", "userdb"):
            base = None
            for name in names:
                runs = results[(kind, name)]
                rate = sum(r["n"] for r in runs) / sum(r["elapsed"] for r in runs)
                p99 = statistics.median(r["p99"] for r in runs)
                base = base or rate
                print(f"  {kind:6} {name:15} {rate:7.0f}/s  p99 (median of rounds) "
                      f"{p99:6.2f} ms  ratio to dict {rate / base:.2f}")  # fmt: skip
        return 0
    finally:
        for dovecot in fronts.values():
            dovecot.stop()
        auth.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
