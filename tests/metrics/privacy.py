"""What no metric file may hold: an address, an IP address, a token (counts only)."""

from __future__ import annotations

import re
from pathlib import Path

# an e-mail address or anything with '@'; an IPv4 shape; a long hex or base64 run (tokens,
# hashes, keys); an IPv6 shape (hex groups with colons)
FORBIDDEN = {
    "@": re.compile(r"@"),
    "IPv4 address": re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b"),
    "hex run": re.compile(r"[0-9a-fA-F]{16,}"),
    "base64 run": re.compile(r"[A-Za-z0-9+/=_-]{32,}"),
    "IPv6 address": re.compile(r"\b[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{0,4}){2,7}\b"),
}


_NAME = re.compile(r"^(?:# (?:HELP|TYPE) )?[a-zA-Z_:][a-zA-Z0-9_:]*")


def private_data(text: str) -> list[str]:
    """The forbidden shapes found in `text` (each line without its metric name, which the code
    chose), each with the line it is on."""
    found = []
    for line in text.splitlines():
        rest = _NAME.sub("", line, count=1)
        if not line.startswith("#"):  # a sample: its value must be a number, then left out
            rest, _, value = rest.rpartition(" ")
            try:
                float(value)
            except ValueError:
                found.append(f"not a number: {line}")
        for what, pattern in FORBIDDEN.items():
            if pattern.search(rest):
                found.append(f"{what}: {line}")
    return found


def scan_directory(directory: Path) -> dict[str, list[str]]:
    """{file name: forbidden shapes} for every file in the textfile directory."""
    return {p.name: private_data(p.read_text()) for p in sorted(directory.iterdir()) if p.is_file()}
