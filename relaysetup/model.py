"""The setup's value objects: what a part wants on the system, and what that changes."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Desired:
    """A file as a part wants it: content, mode, owner and group (names).

    `keep_existing`: the file is only installed when missing (the admin's afterwards, or a key
    that must not change). `secret`: its content is never shown in a diff.
    """

    path: str  # absolute, on the target system
    content: bytes
    mode: int = 0o644
    owner: str = "root"
    group: str = "root"
    keep_existing: bool = False
    secret: bool = False


@dataclass(frozen=True)
class Part:
    """One piece of the relay: its files, the checks of the result and what to reload.

    `checks` run (each an argv) after every part's files are written and before anything is
    reloaded; `reloads` (each an argv) run only when one of the part's files changed.
    """

    name: str
    files: tuple[Desired, ...] = ()
    checks: tuple[tuple[str, ...], ...] = ()
    reloads: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True)
class Current:
    """A file as it is now (None: missing)."""

    content: bytes | None
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None


@dataclass(frozen=True)
class Change:
    """What applying one Desired does: write the content, or only fix mode/owner."""

    part: str
    desired: Desired
    current: Current
    write: bool  # content differs (or the file is missing)
    fix_mode: bool = False
    fix_owner: bool = False


@dataclass(frozen=True)
class Plan:
    """Every change of one run, in order, and the parts they belong to."""

    parts: tuple[Part, ...]
    changes: tuple[Change, ...] = field(default=())

    def changed_parts(self) -> list[Part]:
        names = {change.part for change in self.changes}
        return [part for part in self.parts if part.name in names]
