"""bench/relay/startstop.py: how long `scripts/relay.sh` takes to be ready and to stop.

Starts the local relay (scripts/relay.sh: install check, then scripts/relay.py) N times on one
state directory (the first start makes the keys and certificates; the rest are what a newcomer
sees every day), measures from the command to the "Stop with Ctrl-C." line and from SIGINT to
its exit, and prints the medians. The baseline, measured in the same run, is the bare
start-and-stop of the same Postfix and Dovecot (`postfix start`/`stop`, `dovecot`/`dovecot
stop`) on the configuration the relay rendered: the ratio says how much the relay's own part
adds.

Run as root from the repository:  .venv/bin/python bench/relay/startstop.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def relay_once(state: Path) -> tuple[float, float]:
    """(seconds to ready, seconds from SIGINT to exit) of one scripts/relay.sh run."""
    start = time.monotonic()
    proc = subprocess.Popen(
        [str(REPO / "scripts" / "relay.sh"), "--state", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "Stop with Ctrl-C" in line:
            break
    else:
        raise RuntimeError(f"the relay did not come up (exit {proc.wait()}): {line.strip()}")
    ready = time.monotonic() - start
    stop = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.stdout.read()
    if proc.wait(timeout=30) != 0:
        raise RuntimeError("the relay did not stop cleanly")
    return ready, time.monotonic() - stop


def bare_once(state: Path) -> tuple[float, float]:
    """(start, stop) seconds of the bare Postfix and Dovecot on the relay's configuration."""
    postfix, dovecot = state / "postfix", state / "dovecot" / "dovecot.conf"
    (postfix / "queue" / "quick-start").touch()  # as the relay starts it: checked already
    start = time.monotonic()
    subprocess.run(["dovecot", "-c", str(dovecot)], check=True)
    subprocess.run(["postfix", "-c", str(postfix), "start"], check=True, capture_output=True)
    ready = time.monotonic() - start
    stop = time.monotonic()
    subprocess.run(["postfix", "-c", str(postfix), "stop"], check=True, capture_output=True)
    subprocess.run(["dovecot", "-c", str(dovecot), "stop"], check=True, capture_output=True)
    return ready, time.monotonic() - stop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root")
    with tempfile.TemporaryDirectory(prefix="chatmail-bench-startstop-") as tmp:
        Path(tmp).chmod(0o755)  # the mail user walks into the state directory
        state = Path(tmp) / "state"
        first = relay_once(state)
        relay = [relay_once(state) for _ in range(args.runs)]
        bare = [bare_once(state) for _ in range(args.runs)]
    med = [statistics.median(x[i] for x in relay) for i in (0, 1)]
    base = [statistics.median(x[i] for x in bare) for i in (0, 1)]
    print(f"first start (keys, certificate): ready {first[0]:.2f} s, stop {first[1]:.2f} s")
    print(f"scripts/relay.sh, median of {args.runs}: ready {med[0]:.2f} s, stop {med[1]:.2f} s")
    print(f"bare Postfix + Dovecot (baseline): start {base[0]:.2f} s, stop {base[1]:.2f} s")
    print(f"ratio relay/bare: start {med[0] / base[0]:.2f}, stop {med[1] / base[1]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
