"""bench/relay/dovecot_versions.py: submission to IMAP IDLE notification, Dovecot 2.3 vs 2.4.

Two whole relays side by side, each in its own booted container (testkit/harness/container.py,
systemd as PID 1, its own network holding only `lo`): Debian 12 (Postfix 3.7, Dovecot 2.3)
and Debian 13 (Postfix 3.10, Dovecot 2.4), each with the .deb built from this tree, its
Recommends (Postfix, Dovecot) and the configuration `chatmail-setup` renders, as an admin
installs it (docs/admin.md). Inside each, bench/relay/idle_probe.py submits real Delta Chat
messages over SMTPS and times the recipient's IDLE session's `* N EXISTS` (and the message file
appearing in its Maildir, which shows the share that is Dovecot's own). Batches alternate
between the two containers, so both see the same machine noise.

- active: the IDLE session is a working imap process (a client that was busy in the last
  imap_hibernate_timeout, 30 s): Dovecot's mailbox watcher waits NOTIFY_DELAY_MSECS (500 ms)
  after the inotify event before it tells the session.
- hibernated: the session is parked in imap-hibernate first (what an idle Delta Chat is most
  of the time); the inotify event moves it back to an imap process, which syncs at once.

Run as root from the repository:
  .venv/bin/python bench/relay/dovecot_versions.py [--messages 100] [--hibernated 30]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent
# the harness, and the package tests' container recipe (tests/package), which this reuses
sys.path[:0] = [str(HERE.parents[1] / "testkit"), str(HERE.parents[1] / "tests"), str(HERE)]

from harness.messages import sample  # noqa: E402
from package.debtools import build, copy_repo  # noqa: E402
from package.test_systemd import DOMAIN, MAILBOXES, _apt, _with_package  # noqa: E402
from package.test_trixie_relay import render_mail_config  # noqa: E402
from run import percentile, random_credentials  # noqa: E402

RELEASES = {"bookworm": "Debian 12", "trixie": "Debian 13"}
PROBE = "/root/idle_probe.py"
LOCAL_CONF = "/etc/dovecot/local.conf"
BURST = 10  # the milter's default max_user_send_burst_size: one sender per batch stays below
CONFIG = f"""\
[chatmail]
mail_domain = {DOMAIN}

[auth]
# the benchmark's load must not refuse account creation
max_load_1m = 1000
min_available_memory = 0
min_free_disk = 0

[tls]
cert_file = /etc/ssl/certs/ssl-cert-snakeoil.pem
key_file = /etc/ssl/private/ssl-cert-snakeoil.key
"""


@contextlib.contextmanager
def relay_container(
    deb: Path, workdir: Path, release: str, hibernate_timeout: int | None = None
) -> Iterator:
    """A booted container of `release` with the package, Postfix and Dovecot installed and
    configured by chatmail-setup, and the probe copied in; `hibernate_timeout` (seconds)
    goes into the admin's own /etc/dovecot/local.conf (docs/setup.md)."""
    with _with_package(SimpleNamespace(deb=deb), workdir, release) as ct:
        ct.check(
            "debconf-set-selections",
            input="postfix postfix/main_mailer_type select Internet Site\n"
            f"postfix postfix/mailname string {DOMAIN}\n",
        )
        _apt(ct, "install", ct.deb)  # with the Recommends: Postfix, Dovecot
        ct.path("/etc/chatmail/chatmail.ini").write_text(CONFIG)
        render_mail_config(ct)
        if hibernate_timeout is not None:
            ct.path(LOCAL_CONF).write_text(f"imap_hibernate_timeout = {hibernate_timeout}s\n")
            ct.check(["systemctl", "restart", "dovecot.service"])
        ct.hibernate_timeout = ct.check(["doveconf", "-h", "imap_hibernate_timeout"]).strip()
        ct.copy_in(HERE / "idle_probe.py", PROBE)
        ct.dovecot = ct.check(["dovecot", "--version"]).split()[0]
        ct.postfix = ct.check(["postconf", "-h", "mail_version"]).strip()
        yield ct


def job(mode: str, recipients: int, count: int) -> dict:
    """A probe job: a new sender (so a batch never meets the rate limit), new recipients."""
    sender = random_credentials(DOMAIN)
    rcpts = []
    for _ in range(recipients):
        addr, password = random_credentials(DOMAIN)
        message = sample("chat-text-alice-to-bob", sender[0], addr)
        rcpts.append([addr, password, message.decode("latin-1")])
    return {"mode": mode, "count": count, "mailboxes": MAILBOXES, "sender": sender, "rcpts": rcpts}


def probe(ct, work: dict) -> dict:
    result = ct.run(["python3", PROBE], input=json.dumps(work), timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"probe in {ct.release}: {result.stderr[-3000:]}")
    return json.loads(result.stdout)


def alternate(relays: dict, mode: str, total: int, size: int) -> dict[str, dict[str, list]]:
    """`total` samples per relay in probe jobs of `size`, the relays taking turns."""
    results = {name: {"idle": [], "maildir": [], "cpu": 0.0} for name in relays}
    done = 0
    while done < total:
        size_now = min(size, total - done)
        for name, ct in relays.items():
            work = job(mode, size_now if mode == "hibernated" else 1, size_now)
            found = probe(ct, work)
            parked = size_now if mode == "hibernated" else 0
            if found["hibernated"] != parked:
                raise RuntimeError(f"{name}, {mode}: {found['hibernated']} sessions hibernated")
            for key in ("idle", "maildir", "cpu"):
                results[name][key] += found[key]
        done += size_now
        print(f"  {mode}: {done}/{total}", file=sys.stderr, flush=True)
    return results


def summary(values: list[float]) -> str:
    return (
        f"p50 {percentile(values, 0.5) * 1000:7.1f} ms  p99 {percentile(values, 0.99) * 1000:7.1f}"
        f" ms  mean {statistics.mean(values) * 1000:7.1f} ms"
    )


def report(relays: dict, mode: str, results: dict[str, dict[str, list]]) -> None:
    count = len(next(iter(results.values()))["idle"])
    print(f"{mode} IDLE session, {count} messages per relay:")
    for title, key in (
        ("submission -> IMAP IDLE EXISTS", "idle"),
        ("submission -> Maildir", "maildir"),
    ):
        print(f"  {title}")
        for name, ct in relays.items():
            label = f"{RELEASES[name]}, Dovecot {ct.dovecot}"
            print(f"    {label:>24}: {summary(results[name][key])}")
        old, new = (results[name][key] for name in RELEASES)
        ratio = percentile(new, 0.5) / percentile(old, 0.5)
        print(f"    p50 ratio Debian 13 / Debian 12: {ratio:.2f}")
    dovecot_share = {
        name: percentile([i - m for i, m in zip(r["idle"], r["maildir"], strict=True)], 0.5) * 1000
        for name, r in results.items()
    }
    shares = ", ".join(f"{RELEASES[n]} {v:.1f} ms" for n, v in dovecot_share.items())
    print(f"  Maildir -> EXISTS (Dovecot's own), p50: {shares}")
    cpu = ", ".join(f"{RELEASES[n]} {r['cpu'] / count * 1000:.1f} ms" for n, r in results.items())
    print(f"  Dovecot's CPU time per message (all its processes): {cpu}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100, help="active IDLE, per relay")
    parser.add_argument("--hibernated", type=int, default=30, help="hibernated IDLE, per relay")
    parser.add_argument("--batch", type=int, default=BURST, help=f"at most {BURST}")
    parser.add_argument(
        "--hibernate-timeout",
        type=int,
        metavar="SECONDS",
        help="imap_hibernate_timeout in local.conf (default: the templates' 30 s)",
    )
    args = parser.parse_args()
    if not 1 <= args.batch <= BURST:
        parser.error(f"--batch must be 1 to {BURST} (the milter's burst)")
    work = Path(tempfile.mkdtemp(prefix="bench-dovecot-versions-"))
    try:
        print("building the .deb", file=sys.stderr, flush=True)
        deb, _lint, _log = build(copy_repo(work / "chatmail-services"))
        with contextlib.ExitStack() as stack:
            relays = {}
            for release in RELEASES:
                print(f"booting and setting up {release}", file=sys.stderr, flush=True)
                (work / release).mkdir()
                relays[release] = stack.enter_context(
                    relay_container(deb, work / release, release, args.hibernate_timeout)
                )
            for ct in relays.values():
                probe(ct, job("active", 1, 3))  # warm up: first logins, caches
            active = alternate(relays, "active", args.messages, args.batch)
            hibernated = alternate(relays, "hibernated", args.hibernated, args.batch)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for name, ct in relays.items():
        print(
            f"{RELEASES[name]}: Dovecot {ct.dovecot}, Postfix {ct.postfix}, in a container;"
            f" imap_hibernate_timeout = {ct.hibernate_timeout}"
        )
    report(relays, "active", active)
    if args.hibernated:
        report(relays, "hibernated", hibernated)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
