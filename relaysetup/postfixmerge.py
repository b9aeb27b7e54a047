"""Our settings into an admin's main.cf and master.cf, leaving everything else as it is.

Both files are read as Postfix reads them: a logical line starts with a line that begins with
neither whitespace nor `#`; lines that begin with whitespace continue it (comment and blank
lines in between do not end it). A main.cf logical line is `name = value`, a master.cf one an
entry whose first two fields (service, type) name it.

chatmail-setup keeps its own lines between a BEGIN and an END marker line. A merge replaces
that block (in place when there is one, else appended at the end) and removes every other
definition of one of our names (main.cf) or of one of our (service, type) pairs (master.cf):
ours win, the admin's other lines stay untouched and in order. Merging twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

BEGIN = "# BEGIN chatmail-setup: rewritten by every run of chatmail-setup (docs/setup.md)"
END = "# END chatmail-setup"


class MergeError(Exception):
    """The file cannot be merged (one line for the admin)."""


@dataclass(frozen=True)
class Logical:
    """One logical line: its name, its value (continuations joined) and its physical lines."""

    name: str
    value: str
    lines: tuple[int, ...]  # indexes into the file's physical lines


def _is_start(line: str) -> bool:
    return bool(line) and not line[0].isspace() and not line.startswith("#")


def _is_continuation(line: str) -> bool:
    stripped = line.strip()
    return bool(line) and line[0].isspace() and bool(stripped) and not stripped.startswith("#")


def logical_lines(lines: list[str], name_of: Callable[[str], str]) -> list[Logical]:
    """The logical lines of `lines` (physical lines without their newline)."""
    found: list[tuple[int, list[int]]] = []
    for index, line in enumerate(lines):
        if _is_start(line):
            found.append((index, [index]))
        elif _is_continuation(line) and found:
            found[-1][1].append(index)
    return [
        Logical(
            name_of(lines[start]),
            " ".join(lines[i].strip() for i in members),
            tuple(members),
        )
        for start, members in found
    ]


def main_name(line: str) -> str:
    """The parameter name of a main.cf line (`name = value`)."""
    return line.split("=", 1)[0].strip()


def master_name(line: str) -> str:
    """`service type` of a master.cf entry line."""
    return " ".join(line.split()[:2])


def main_settings(text: str) -> dict[str, str]:
    """What Postfix sees in main.cf: each name's value (the last definition wins)."""
    lines = text.splitlines()
    settings = {}
    for logical in logical_lines(lines, main_name):
        settings[logical.name] = (
            logical.value.split("=", 1)[1].strip() if "=" in logical.value else ""
        )
    return settings


def master_entries(text: str) -> dict[str, str]:
    """master.cf's entries by `service type`, each as its fields joined by single spaces."""
    return {
        entry.name: " ".join(entry.value.split())
        for entry in logical_lines(text.splitlines(), master_name)
    }


def _block_span(lines: list[str], filename: str) -> tuple[int, int] | None:
    """(first, last) index of our block, markers included, or None."""
    begins = [i for i, line in enumerate(lines) if line == BEGIN]
    ends = [i for i, line in enumerate(lines) if line == END]
    if not begins and not ends:
        return None
    if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
        raise MergeError(
            f"{filename}: the chatmail-setup block is damaged (one BEGIN line, then one END line "
            "expected); restore it from a backup or remove its lines"
        )
    return begins[0], ends[0]


def merge(current: str, ours: str, name_of: Callable[[str], str], filename: str) -> str:
    """`current` with our block replaced by `ours` and other definitions of our names gone."""
    lines = current.splitlines()
    span = _block_span(lines, filename)
    our_lines = ours.rstrip("\n").splitlines()
    our_names = {logical.name for logical in logical_lines(our_lines, name_of)}
    drop = set(range(span[0], span[1] + 1)) if span else set()
    outside = [i for i in range(len(lines)) if i not in drop]
    for logical in logical_lines([lines[i] for i in outside], name_of):
        if logical.name in our_names:
            drop.update(outside[i] for i in logical.lines)
    block = [BEGIN, *our_lines, END]
    result: list[str] = []
    for index, line in enumerate(lines):
        if span and index == span[0]:
            result.extend(block)
        if index not in drop:
            result.append(line)
    if not span:
        if result and result[-1].strip():
            result.append("")
        result.extend(block)
    return "\n".join(result) + "\n"


def merge_main(current: str, ours: str) -> str:
    """main.cf: our parameters in our block, no other definition of them."""
    return merge(current, ours, main_name, "main.cf")


def merge_master(current: str, ours: str) -> str:
    """master.cf: our entries in our block, no other entry with the same service and type."""
    return merge(current, ours, master_name, "master.cf")
