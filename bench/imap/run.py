"""bench/imap: many idle IMAP clients, and the push latency, on a whole local relay.

1. N concurrent IDLE connections (TLS, logged in, INBOX selected, IDLE), opened by a few
   client processes: the proportional set size (PSS) of all Dovecot processes per 1,000 idle
   connections, with hibernation (the template's imap_hibernate_timeout = 30s, measured once
   the connections have moved into imap-hibernate) and without (the same relay with
   imap_hibernate_timeout = 0).
   With --compress instead: the same idle connections on a relay with `[imap] compress = yes`,
   each sending COMPRESS DEFLATE right after LOGIN (as Delta Chat does when it is offered) and
   going on compressed, against plain ones on the same template (hibernated), measured once
   the hibernation timeout has passed (Dovecot hibernates no compressed connection).
2. Push latency: messages delivered over LMTP (the socket Postfix uses) to an account with one
   device token; time from the end of DATA to the POST at a local HTTPS stand-in for the
   notification service, p50 and p99.

For its run it applies the kernel settings the Debian package ships for a relay
(debian/sysctl/60-chatmail-services.conf: inotify instances, which every IDLE client holds)
and puts the old values back afterwards.

Run as root from the repository:  .venv/bin/python bench/imap/run.py [--connections 10000]
                                  .venv/bin/python bench/imap/run.py --compress --connections 1000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import resource
import shutil
import smtplib
import ssl
import statistics
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection, wait
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "testkit"))  # the harness package

from harness import stack_dir  # noqa: E402
from harness.imap import Imap  # noqa: E402
from harness.pushservice import StandIn  # noqa: E402
from harness.relay import LocalRelay  # noqa: E402

TLS = ssl._create_unverified_context()
PER_ACCOUNT = 10  # Dovecot's mail_max_userip_connections
PASSWORD = "bench-imap-password"
BENCH_AUTH = {"max_load_1m": 1000, "min_available_memory": 0, "min_free_disk": 0}
SYSCTL_FILE = REPO / "debian" / "sysctl" / "60-chatmail-services.conf"  # what the package sets
HANDSHAKES_IN_FLIGHT = 32  # per client process
DOVECOT_NOFILE = 65535  # LimitNOFILE in Debian's dovecot.service
HIBERNATE_AFTER = 30  # the template's imap_hibernate_timeout


class Deflate:
    """The two directions of an IMAP connection after COMPRESS DEFLATE (RFC 4978: raw deflate,
    each write flushed)."""

    def __init__(self) -> None:
        self.out = zlib.compressobj(wbits=-15)
        self.inflate = zlib.decompressobj(wbits=-15)

    def pack(self, data: bytes) -> bytes:
        return self.out.compress(data) + self.out.flush(zlib.Z_SYNC_FLUSH)

    def unpack(self, data: bytes) -> bytes:
        return self.inflate.decompress(data)


async def compressed_line(
    reader: asyncio.StreamReader, deflate: Deflate, pending: list[bytes]
) -> bytes:
    """The next line of a compressed connection (`pending` holds what was inflated already)."""
    while b"\n" not in pending[0]:
        data = await reader.read(4096)
        if not data:
            return b""
        pending[0] += deflate.unpack(data)
    line, pending[0] = pending[0].split(b"\n", 1)
    return line + b"\n"


def package_sysctl() -> dict[str, int]:
    """The kernel settings the Debian package ships for a relay (`key = value` lines)."""
    settings = {}
    for line in SYSCTL_FILE.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, value = (part.strip() for part in line.split("=", 1))
            settings[key] = int(value)
    return settings


@contextlib.contextmanager
def relay_sysctl() -> Iterator[None]:
    """The package's sysctl settings for the run (never lowering one), then the old values."""
    old: dict[Path, str] = {}
    try:
        for key, value in package_sysctl().items():
            path = Path("/proc/sys") / key.replace(".", "/")
            old[path] = path.read_text()
            if int(old[path]) < value:
                path.write_text(f"{value}\n")
                print(f"# {key} = {value} for this run (was {old[path].strip()})", flush=True)
        yield
    finally:
        for path, text in old.items():
            path.write_text(text)


def dovecot_processes(relay: LocalRelay) -> list[tuple[int, str]]:
    """(pid, command name) of the Dovecot master and every process below it."""
    master = int((relay.dovecot.base_dir / "master.pid").read_text().split()[0])
    out = subprocess.run(
        ["ps", "-e", "-o", "pid=,ppid=,comm="], capture_output=True, text=True
    ).stdout
    children: dict[int, list[tuple[int, str]]] = {}
    for line in out.splitlines():
        pid, ppid, name = line.split(None, 2)
        children.setdefault(int(ppid), []).append((int(pid), name.strip()))
    found, stack = [(master, "dovecot")], [master]
    while stack:
        for pid, name in children.get(stack.pop(), []):
            found.append((pid, name))
            stack.append(pid)
    return found


def dovecot_pss(relay: LocalRelay) -> dict[str, int]:
    """PSS (bytes) of the Dovecot master and every process below it, summed by process name."""
    totals: dict[str, int] = {}
    for pid, name in dovecot_processes(relay):
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    totals[name] = totals.get(name, 0) + int(line.split()[1]) * 1024
        except OSError:
            pass
    return totals


async def idle_client(port: int, user: str, release: asyncio.Event, up: list[int],
                      handshakes: asyncio.Semaphore, compress: bool) -> None:  # fmt: skip
    """One Delta-Chat-like connection: TLS, LOGIN, (COMPRESS DEFLATE,) SELECT INBOX, IDLE until
    released."""
    deflate: Deflate | None = None
    pending = [b""]

    async def readline() -> bytes:
        if deflate is None:
            return await reader.readline()
        return await compressed_line(reader, deflate, pending)

    def write(data: bytes) -> None:
        writer.write(deflate.pack(data) if deflate else data)

    async with handshakes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=TLS)
        await reader.readline()
        commands = [(b"a", f'LOGIN "{user}" "{PASSWORD}"'), (b"b", "SELECT INBOX")]
        if compress:
            commands.insert(1, (b"z", "COMPRESS DEFLATE"))
        for tag, command in commands:
            write(tag + b" " + command.encode() + b"\r\n")
            while not (line := await readline()).startswith(tag + b" "):
                if not line:
                    raise ConnectionError(f"{user}: closed before {command.split()[0]}")
            if not line.startswith(tag + b" OK"):
                raise RuntimeError(f"{user}: {line!r}")
            if tag == b"z":
                deflate = Deflate()  # from the byte after the OK line on, both ways
        write(b"c IDLE\r\n")
        if not (await readline()).startswith(b"+"):
            raise RuntimeError(f"{user}: IDLE refused")
    up[0] += 1
    await release.wait()
    write(b"DONE\r\n")
    writer.close()


def client_process(port: int, users: list[str], conn: Connection, compress: bool) -> None:
    """One client process: IDLE connections for `users`; sends ("up", n) as they come up
    (or ("error", text)), holds them until the parent sends anything, then closes them."""

    async def run() -> None:
        release, up = asyncio.Event(), [0]
        asyncio.get_running_loop().add_reader(conn.fileno(), release.set)
        handshakes = asyncio.Semaphore(HANDSHAKES_IN_FLIGHT)
        tasks = [
            asyncio.create_task(idle_client(port, user, release, up, handshakes, compress))
            for user in users
        ]
        reported = -1
        while not release.is_set():
            failed = [t for t in tasks if t.done() and not t.cancelled() and t.exception()]
            if failed:
                conn.send(("error", repr(failed[0].exception())))
                break
            if up[0] != reported:
                reported = up[0]
                conn.send(("up", reported))
            await asyncio.sleep(0.25)
        release.set()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(run())


def hold_idle(relay: LocalRelay, users: list[str], n: int, clients: int, hibernate: bool,
              compress: bool = False) -> tuple[dict[str, int], dict[str, int], float]:  # fmt: skip
    """Open n IDLE connections from `clients` processes; once they are all up (and, with
    hibernation, moved into imap-hibernate; compressed: once the hibernation timeout has
    passed) return (PSS by process name before, the same with them, seconds to bring them
    up)."""
    before = dovecot_pss(relay)
    slots = [users[i // PER_ACCOUNT] for i in range(n)]
    context = multiprocessing.get_context("fork")
    pipes, workers = [], []
    for k in range(clients):
        parent, child = context.Pipe()
        worker = context.Process(
            target=client_process,
            args=(relay.dovecot.imaps_port, slots[k::clients], child, compress),
        )
        worker.start()
        pipes.append(parent)
        workers.append(worker)
    up = [0] * clients
    started = last_print = time.monotonic()
    try:
        while sum(up) < n:
            for ready in wait(pipes, timeout=600):
                kind, value = ready.recv()  # type: ignore[union-attr]
                if kind == "error":
                    raise RuntimeError(f"a client failed after {sum(up)} connections: {value}")
                up[pipes.index(ready)] = value
            if time.monotonic() - last_print > 15:
                last_print = time.monotonic()
                print(f"#   {sum(up)} of {n} up after {last_print - started:.0f} s", flush=True)
        ramp = time.monotonic() - started
        print(f"#   all {n} up in {ramp:.0f} s", flush=True)
        if compress:
            time.sleep(HIBERNATE_AFTER + 15)
            active = sum(1 for _pid, name in dovecot_processes(relay) if name == "imap")
            print(f"#   {active} imap processes after {HIBERNATE_AFTER + 15} s", flush=True)
        elif hibernate:
            wait_for_hibernation(relay, n)
        else:
            time.sleep(5)
        after = dovecot_pss(relay)
    finally:
        for parent in pipes:
            with contextlib.suppress(OSError):
                parent.send("release")
        for worker in workers:
            worker.join(timeout=120)
            if worker.is_alive():
                worker.kill()
    return before, after, ramp


def wait_for_hibernation(relay: LocalRelay, n: int, timeout: float = 300) -> None:
    """Until all but one in 1,000 connections have left their imap process for imap-hibernate."""
    deadline = time.monotonic() + timeout
    while True:
        active = sum(1 for _pid, name in dovecot_processes(relay) if name == "imap")
        if active <= n // 1000:
            fds = [
                len(list(Path(f"/proc/{pid}/fd").iterdir()))
                for pid, name in dovecot_processes(relay)
                if name == "imap-hibernate"
            ]
            print(f"#   hibernated ({active} imap processes left; {len(fds)} imap-hibernate "
                  f"processes, descriptors {sorted(fds)})", flush=True)  # fmt: skip
            time.sleep(5)
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{active} of {n} connections did not hibernate")
        time.sleep(2)


def make_accounts(relay: LocalRelay, count: int) -> list[str]:
    """`count` accounts, each created by its first login (8 at a time)."""
    users = [f"idle{i:05d}@{relay.config.chatmail.mail_domain}" for i in range(count)]

    def create(user: str) -> None:
        Imap(relay.dovecot.imaps_port).login(user, PASSWORD).close()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, users))
    return users


def print_dovecot_complaints(relay: LocalRelay, last: int = 20) -> None:
    """The last warnings and errors of the relay's Dovecot log (its log goes with the run)."""
    words = (" Warning: ", " Error: ", " Fatal: ", " Panic: ")
    lines = [
        line for line in relay.dovecot.log_text().splitlines() if any(w in line for w in words)
    ]
    print("\n".join(["# Dovecot said:", *lines[-last:]]), flush=True)


def idle_memory(connections: int, clients: int, hibernate: bool,
                compress: bool = False) -> tuple[dict[str, float], float]:  # fmt: skip
    """(Dovecot PSS bytes per 1,000 idle connections by process name, with "all" the sum;
    seconds to bring them up). `compress`: on a relay with `[imap] compress = yes`, each
    client turns COMPRESS on after LOGIN."""
    root = stack_dir("chatmail-bench-imap-")
    sections: dict[str, dict[str, object]] = {"auth": BENCH_AUTH}
    if compress:
        sections["imap"] = {"compress": "yes"}
    relay = LocalRelay(root, milter=False, config_sections=sections)
    if not hibernate:
        text = relay.dovecot.conf.read_text()
        relay.dovecot.conf.write_text(
            text.replace("imap_hibernate_timeout = 30s", "imap_hibernate_timeout = 0")
        )
    try:
        with relay:
            users = make_accounts(relay, -(-connections // PER_ACCOUNT))
            try:
                before, after, ramp = hold_idle(
                    relay, users, connections, clients, hibernate, compress
                )
            except RuntimeError:
                print_dovecot_complaints(relay)
                raise
    finally:
        shutil.rmtree(root, ignore_errors=True)
    names = set(before) | set(after)
    grown = {name: after.get(name, 0) - before.get(name, 0) for name in names}
    per_1000 = {name: value / connections * 1000 for name, value in grown.items()}
    per_1000["all"] = sum(grown.values()) / connections * 1000
    return per_1000, ramp


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


def print_result(label: str, n: int, per_1000: dict[str, float], ramp: float) -> None:
    mib = per_1000["all"] / 2**20
    print(f"{n} idle IMAP connections {label}: {mib:.1f} MiB Dovecot PSS per 1,000 "
          f"(all up in {ramp:.0f} s)", flush=True)  # fmt: skip
    parts = sorted(per_1000.items(), key=lambda item: -item[1])
    print("#   of which " + ", ".join(
        f"{name} {value / 2**20:.1f}" for name, value in parts
        if name != "all" and abs(value) >= 2**20 / 10
    ), flush=True)  # fmt: skip


def compare_compress(n: int, clients: int) -> int:
    """Plain against compressed idle connections, hibernation on for both."""
    results = {}
    for compress in (False, True):
        label = "with COMPRESS DEFLATE" if compress else "plain (hibernated)"
        print(f"# {n} idle IMAP connections {label} ...", flush=True)
        results[compress], ramp = idle_memory(n, clients, True, compress)
        print_result(label, n, results[compress], ramp)
    ratio = results[True]["all"] / results[False]["all"]
    print(f"compressed / plain: {ratio:.1f} times the memory per idle connection", flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=10000)
    parser.add_argument("--without-connections", type=int, default=None,
                        help="connections for the run without hibernation "
                        "(default: --connections)")  # fmt: skip
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--compress", action="store_true",
                        help="instead: compressed idle connections against plain ones "
                        "(both with hibernation on)")  # fmt: skip
    args = parser.parse_args()
    # Dovecot's processes inherit this: Debian's dovecot.service has LimitNOFILE=65535, and the
    # imap-hibernate process holds two descriptors per client (its socket, its inotify).
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < DOVECOT_NOFILE:
        print(f"# descriptors per process: {hard} here, {DOVECOT_NOFILE} under systemd", flush=True)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.compress:
        with relay_sysctl():
            return compare_compress(args.connections, args.clients)
    per_1000: dict[bool, dict[str, float]] = {}
    with relay_sysctl():
        for hibernate in (True, False):
            n = args.connections if hibernate else (args.without_connections or args.connections)
            label = "with hibernation" if hibernate else "without hibernation"
            print(f"# {n} idle IMAP connections {label} ...", flush=True)
            per_1000[hibernate], ramp = idle_memory(n, args.clients, hibernate)
            mib = per_1000[hibernate]["all"] / 2**20
            print(f"{n} idle IMAP connections {label}: {mib:.1f} MiB Dovecot PSS per 1,000 "
                  f"(all up in {ramp:.0f} s)", flush=True)  # fmt: skip
            parts = sorted(per_1000[hibernate].items(), key=lambda item: -item[1])
            print("#   of which " + ", ".join(
                f"{name} {value / 2**20:.1f}" for name, value in parts
                if name != "all" and abs(value) >= 2**20 / 10
            ), flush=True)  # fmt: skip
        latencies = sorted(push_latency(args.messages))
    ratio = per_1000[True]["all"] / per_1000[False]["all"]
    print(f"hibernation / without: {ratio:.2f} of the memory per connection", flush=True)
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    print(f"LMTP delivery -> notification POST over {len(latencies)} messages: "
          f"p50 {p50:.1f} ms, p99 {p99:.1f} ms", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
