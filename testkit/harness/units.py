"""Read our systemd units, so the local relay starts each service exactly as its unit says."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

from . import REPO

UNITS_DIR = REPO / "systemd-units"


def unit_config(name: str) -> configparser.ConfigParser:
    """systemd-units/<name> as a ConfigParser (keys case-kept; a repeated key: the last)."""
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNITS_DIR / name)
    return parser


def read_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """Parse a unit file into {section: {key: [values in order]}} (continuations joined)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    pending = ""
    for raw in path.read_text().splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        if current is None or "=" not in line:
            raise ValueError(f"{path}: cannot parse line {raw!r}")
        key, value = line.split("=", 1)
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def unit_value(unit: dict[str, dict[str, list[str]]], section: str, key: str) -> str | None:
    """The last value of a key (systemd's rule for single-valued settings), or None."""
    values = unit.get(section, {}).get(key)
    return values[-1] if values else None


def exec_start(unit: dict[str, dict[str, list[str]]], bin_dir: Path) -> list[str]:
    """ExecStart as argv, with /usr/bin/<ours> mapped to the same command in bin_dir."""
    value = unit_value(unit, "Service", "ExecStart")
    if not value:
        raise ValueError("unit has no ExecStart")
    argv = shlex.split(value.lstrip("-@:+!"))
    program = Path(argv[0])
    if program.name.startswith("chatmail-"):
        argv[0] = str(bin_dir / program.name)
    return argv
