"""The plan as an admin reads it: a unified diff per file, secrets left out."""

from __future__ import annotations

import difflib
import grp
import pwd

from .model import Change, Plan


def owner_names(uid: int | None, gid: int | None) -> str:
    """`user:group` of ids, a number where the name is unknown."""
    try:
        user = pwd.getpwuid(uid).pw_name if uid is not None else "?"
    except KeyError:
        user = str(uid)
    try:
        group = grp.getgrgid(gid).gr_name if gid is not None else "?"
    except KeyError:
        group = str(gid)
    return f"{user}:{group}"


def _text(content: bytes | None) -> list[str]:
    if content is None:
        return []
    return content.decode("utf-8", "replace").splitlines(keepends=True)


def change_diff(change: Change) -> str:
    """One change: a unified diff, or one line for what cannot or must not be shown."""
    path, desired, current = change.desired.path, change.desired, change.current
    lines = []
    if change.write:
        if desired.secret:
            verb = "create" if current.content is None else "replace"
            lines.append(f"{path}: {verb} (content not shown: it holds a secret)\n")
        else:
            old = "/dev/null" if current.content is None else path
            diff = difflib.unified_diff(
                _text(current.content), _text(desired.content), old, f"{path} (chatmail-setup)"
            )
            shown = [line if line.endswith("\n") else line + "\n" for line in diff]
            if not shown:  # empty, or bytes that differ where the text does not
                verb = "create" if current.content is None else "replace"
                shown = [f"{path}: {verb} ({len(desired.content)} bytes, no text difference)\n"]
            lines.extend(shown)
        if current.content is None:
            lines.append(f"{path}: new, mode {desired.mode:04o}, {desired.owner}:{desired.group}\n")
    kept = " (secret kept, {} repaired)" if desired.keep_existing and desired.secret else ""
    if change.fix_mode or (change.write and current.mode not in (None, desired.mode)):
        why = kept.format("mode")
        lines.append(f"{path}: mode {current.mode:04o} -> {desired.mode:04o}{why}\n")
    if change.fix_owner:
        was = owner_names(current.uid, current.gid)
        why = kept.format("owner")
        lines.append(f"{path}: owner {was} -> {desired.owner}:{desired.group}{why}\n")
    return "".join(lines)


def plan_diff(plan: Plan) -> str:
    """All changes, then one summary line."""
    if not plan.changes:
        return "chatmail-setup: nothing to change\n"
    body = "".join(change_diff(change) for change in plan.changes)
    parts = ", ".join(part.name for part in plan.changed_parts())
    return f"{body}chatmail-setup: {len(plan.changes)} file(s) to change ({parts})\n"
