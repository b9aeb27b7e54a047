"""Build a synthetic relay tree for the reaper benchmark (reused across runs).

`python build_tree.py ROOT --accounts 10000 --messages 100` writes ROOT/mailboxes/<address>/
with a password file (last login), Dovecot's own files, INBOX and `.DeltaChat/` folders and
`--messages` Dovecot-named message files per account, ages spread uniformly over 40 days; each
file's mtime equals the delivery time in its name, as after a real delivery. Deterministic
(seeded); finishes by writing ROOT/DONE so a half-built tree is never reused.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path

DAY = 86400


def build(root: Path, accounts: int, messages: int, now: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    mailboxes = root / "mailboxes"
    mailboxes.mkdir(parents=True, exist_ok=True)
    payload = b"x" * 4096
    for i in range(accounts):
        home = mailboxes / f"u{i:08d}@chat.example"
        folders = [home, home / ".DeltaChat"]
        for folder in folders:
            for sub in ("cur", "new", "tmp"):
                (folder / sub).mkdir(parents=True, exist_ok=True)
            (folder / "dovecot-uidlist").write_bytes(b"3 V1 N1\n")
            (folder / "dovecot.index.log").write_bytes(b"\0" * 64)
        (home / "subscriptions").write_bytes(b"DeltaChat\n")
        (home / "maildirsize").write_bytes(b"524288000S\n0 0\n")
        for n in range(messages):
            delivered = now - rng.randrange(40 * DAY)
            size = rng.randrange(200, 3000)
            folder = folders[rng.random() < 0.6]
            seen = rng.random() < 0.8
            base = f"{delivered}.M{rng.randrange(10**6)}P{n}.bench,S={size},W={size + 20}"
            path = folder / ("cur" if seen else "new") / (base + (":2,S" if seen else ""))
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, payload[:size])
            finally:
                os.close(fd)
            os.utime(path, (delivered, delivered))
        password = home / "password"
        password.write_text("{SHA512-CRYPT}$6$bench$bench\n")
        # 2 % of the accounts have not logged in for 100 days, the rest within the last week
        last = now - (100 if rng.random() < 0.02 else rng.randrange(7)) * DAY
        last = last // DAY * DAY
        os.utime(password, (last, last))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--accounts", type=int, default=10000)
    parser.add_argument("--messages", type=int, default=100)
    args = parser.parse_args()
    done = args.root / "DONE"
    if done.exists():
        print(f"{args.root}: already built")
        return
    start = time.monotonic()
    build(args.root, args.accounts, args.messages, int(time.time()))
    done.write_text(f"{args.accounts} {args.messages}\n")
    print(f"{args.root}: built in {time.monotonic() - start:.0f} s")


if __name__ == "__main__":
    main()
