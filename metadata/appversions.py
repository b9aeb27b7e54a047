"""`/shared/vendor/deltachat/appversions`: the newest Delta Chat releases, which apps compare
with their own version to tell the user about an update.

The value is one line of JSON, `{"clients": [{"clientId", "sources": [{"sourceId",
"versionInteger", "versionString", "downloadUrl"}]}]}`. The core (`appversions.rs`) reads it
into typed structures: a missing or unknown key is a default or ignored, but one value of the
wrong type (a string for `versionInteger`, a null, a number out of u32) makes it drop the
whole value. `check` applies the same rules, so a file the core would drop is not served.

Where it comes from: `[metadata] app_versions_file`; while that file does not exist, the list
shipped in this package (`appversions.json` beside this module); empty setting: none.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger("chatmail.metadata")

SHIPPED = Path(__file__).with_name("appversions.json")
MAX_BYTES = 64 * 1024
U32_MAX = 2**32 - 1
_CLIENT_STRINGS = ("clientId",)
_SOURCE_STRINGS = ("sourceId", "versionString", "downloadUrl")


def _check_source(source: object, where: str) -> str | None:
    if not isinstance(source, dict):
        return f"{where}: not an object"
    for name in _SOURCE_STRINGS:
        if name in source and not isinstance(source[name], str):
            return f"{where}.{name}: not a string"
    number = source.get("versionInteger", 0)
    if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= U32_MAX:
        return f"{where}.versionInteger: not an integer from 0 to {U32_MAX}"
    return None


def _check_client(client: object, where: str) -> str | None:
    if not isinstance(client, dict):
        return f"{where}: not an object"
    for name in _CLIENT_STRINGS:
        if name in client and not isinstance(client[name], str):
            return f"{where}.{name}: not a string"
    sources = client.get("sources", [])
    if not isinstance(sources, list):
        return f"{where}.sources: not an array"
    for i, source in enumerate(sources):
        if problem := _check_source(source, f"{where}.sources[{i}]"):
            return problem
    return None


def check(value: object) -> str | None:
    """Why the Delta Chat core would refuse `value` (parsed JSON), or None if it takes it."""
    if not isinstance(value, dict):
        return "not a JSON object"
    clients = value.get("clients", [])
    if not isinstance(clients, list):
        return "clients: not an array"
    for i, client in enumerate(clients):
        if problem := _check_client(client, f"clients[{i}]"):
            return problem
    return None


def _unique(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """An object whose keys are all different (the core refuses a known key twice)."""
    value = dict(pairs)
    if len(value) != len(pairs):
        raise ValueError("a key twice")
    return value


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def parse(data: bytes) -> str:
    """The one-line value of a file's content; ValueError saying why it cannot be served."""
    if len(data) > MAX_BYTES:
        raise ValueError(f"larger than {MAX_BYTES} bytes")
    try:
        value = json.loads(data, object_pairs_hook=_unique, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise ValueError("not valid JSON (or a key twice in one object)") from None
    if problem := check(value):
        raise ValueError(problem)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True)


def serve(path: str) -> str | None:
    """The value to serve for the setting `path` (see the module's doc); None: absent."""
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        data = SHIPPED.read_bytes()
        path = str(SHIPPED)
    except OSError as exc:
        log.warning("cannot read app_versions_file: %s", exc.strerror)
        return None
    try:
        return parse(data)
    except ValueError as exc:
        log.warning("app versions in %s not served: %s", path, exc)
        return None
