"""Benchmark: a full dry-run pass of chatmail-expire against `find -type f -mtime +20`.

    .venv/bin/python bench/expire/run.py [--accounts 10000] [--messages 100] [--rounds 5]

Builds (once, reused) a synthetic relay under /tmp (see build_tree.py), then runs both
commands once to warm the page cache and then alternately `--rounds` times, measuring wall
time and peak resident memory (wait4's ru_maxrss) of each child. Prints the medians and the
ratio reaper/find; targets: ratio <= 1.0, reaper peak RSS < 60 MB.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REAPER = Path(sys.executable).parent / "chatmail-expire"


def measure(argv: list[str], out_path: Path) -> tuple[float, float]:
    """Run argv with stdout to out_path; return (wall seconds, peak RSS in MB).

    GNU time reports the peak RSS: a child forked from this Python process would count
    the parent's pages it had before exec.
    """
    rss_path = out_path.with_suffix(".rss")
    start = time.monotonic()
    with out_path.open("wb") as out:
        result = subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", str(rss_path), *argv],
            stdout=out,
            stderr=subprocess.DEVNULL,
        )
    elapsed = time.monotonic() - start
    if result.returncode != 0:
        raise SystemExit(f"{argv[0]} failed with {result.returncode}")
    return elapsed, int(rss_path.read_text().split()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=10000)
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--root", type=Path, help="tree location (default /tmp/expire-bench-AxM)")
    args = parser.parse_args()
    root = args.root or Path(f"/tmp/expire-bench-{args.accounts}x{args.messages}")
    if not (root / "DONE").exists():
        subprocess.run(
            [sys.executable, str(HERE / "build_tree.py"), str(root),
             "--accounts", str(args.accounts), "--messages", str(args.messages)],
            check=True,
        )  # fmt: skip
    mailboxes = root / "mailboxes"
    config = root / "bench.ini"
    config.write_text(f"[chatmail]\nmail_domain = chat.example\nmailboxes_dir = {mailboxes}\n")
    find = ["find", str(mailboxes), "-type", "f", "-mtime", "+20"]
    reaper = [str(REAPER), "--config", str(config), "--json"]

    find_out, reaper_out = root / "find.out", root / "reaper.out"
    measure(find, find_out)  # warm the page cache (dentries and inodes) for both
    measure(reaper, reaper_out)
    summary = json.loads(reaper_out.read_text())
    find_times, reaper_times, reaper_rss, find_rss = [], [], [], []
    for _ in range(args.rounds):  # alternate, so drift affects both alike
        seconds, rss = measure(find, find_out)
        find_times.append(seconds)
        find_rss.append(rss)
        seconds, rss = measure(reaper, reaper_out)
        reaper_times.append(seconds)
        reaper_rss.append(rss)
    files = args.accounts * args.messages
    find_median = statistics.median(find_times)
    reaper_median = statistics.median(reaper_times)
    print(f"tree: {args.accounts} accounts x {args.messages} messages = {files} message files")
    print(
        f"dry run would remove {summary['accounts_removed']} accounts, "
        f"{summary['messages_removed']} messages"
    )
    for label, times, rss in (
        ("find -type f -mtime +20", find_times, find_rss),
        ("chatmail-expire (dry run)", reaper_times, reaper_rss),
    ):
        runs = ", ".join(f"{t:.2f}" for t in times)
        median = statistics.median(times)
        print(f"{label}: median {median:.2f} s (runs {runs}), peak RSS {max(rss):.1f} MB")
    ratio = reaper_median / find_median
    print(f"ratio reaper/find: {ratio:.2f} (target <= 1.0: {'met' if ratio <= 1.0 else 'MISSED'})")
    peak = max(reaper_rss)
    print(f"reaper peak RSS: {peak:.1f} MB (target < 60 MB: {'met' if peak < 60 else 'MISSED'})")


if __name__ == "__main__":
    main()
