"""Lines from the journal as the report may show them: no mail address, no IP address."""

from __future__ import annotations

import re

MAX_LINE = 160
_ADDRESS = re.compile(r"\S*@\S*")
_IPV4 = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.])")
# hex digits with two or more colons: an IPv6 address (or a time of day, which stays)
_IPV6 = re.compile(r"(?<![\w:])[0-9A-Fa-f]*(?::[0-9A-Fa-f]*){2,}")
_TIME = re.compile(r"\d{1,2}:\d{2}:\d{2}")


def _ipv6(match: re.Match[str]) -> str:
    text = match.group(0)
    core = text.rstrip(":")
    return text if _TIME.fullmatch(core) else "<ip>"


def redact(line: str) -> str:
    """`line` with every word holding an @ replaced by `<address>`, every IPv4 and IPv6
    address by `<ip>`, control characters by spaces, and cut to `MAX_LINE` characters."""
    text = "".join(ch if ch.isprintable() else " " for ch in line)
    text = _ADDRESS.sub("<address>", text)
    text = _IPV4.sub("<ip>", text)
    text = _IPV6.sub(_ipv6, text)
    text = " ".join(text.split())
    return text if len(text) <= MAX_LINE else text[: MAX_LINE - 3] + "..."
