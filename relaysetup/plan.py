"""What a run changes: each part's desired files compared with the files as they are."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from .model import Change, Current, Desired, Part, Plan

Ids = tuple[int, int] | None  # (uid, gid) a file must have; None: owners are not managed


def file_change(part: str, desired: Desired, current: Current, ids: Ids) -> Change | None:
    """The change that makes `current` into `desired`, or None when nothing differs.

    A kept file (`keep_existing`) is left alone, except a kept secret: its content stays,
    its mode and owner are repaired."""
    if current.content is None:
        return Change(part, desired, current, write=True)
    if desired.keep_existing and not desired.secret:
        return None
    write = not desired.keep_existing and current.content != desired.content
    fix_mode = current.mode != desired.mode
    fix_owner = ids is not None and (current.uid, current.gid) != ids
    if not (write or fix_mode or fix_owner):
        return None
    return Change(part, desired, current, write=write, fix_mode=fix_mode, fix_owner=fix_owner)


def make_plan(
    parts: Iterable[Part],
    read: Callable[[str], Current],
    ids_of: Callable[[Desired], Ids],
) -> Plan:
    """Every part's changes, in the parts' order; a path listed twice is an error."""
    parts = tuple(parts)
    seen: set[str] = set()
    changes = []
    for part in parts:
        for desired in part.files:
            if desired.path in seen:
                raise ValueError(f"{desired.path}: wanted by two parts")
            seen.add(desired.path)
            change = file_change(part.name, desired, read(desired.path), ids_of(desired))
            if change is not None:
                changes.append(change)
    return Plan(parts, tuple(changes))
