"""Checks with Prometheus's own tool (Debian's `prometheus` package): the real parser."""

from __future__ import annotations

import shutil
import subprocess

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def check_metrics(text: str) -> subprocess.CompletedProcess:
    """`promtool check metrics` on `text`: exit 0 when it parses and passes the lint."""
    return subprocess.run(
        [PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )


def parses(result: subprocess.CompletedProcess) -> bool:
    """Whether promtool parsed the text: exit 0, or 3 for lint remarks only (e.g. on a random
    test name that looks like a unit); 1 is a parse error."""
    return result.returncode in (0, 3) and "parsing error" not in result.stdout + result.stderr


def parse_samples(text: str) -> dict[str, float]:
    """{`name{labels}`: value} of a rendered file, for exact comparisons in tests (the sample
    lines as written; promtool has checked the syntax)."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            samples[key] = float(value)
    return samples
