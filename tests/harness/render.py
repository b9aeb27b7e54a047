"""Fill the {{name}} placeholders of the production templates in docs/templates/."""

from __future__ import annotations

import re
from pathlib import Path

from . import TEMPLATES

_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")


def render_text(text: str, values: dict[str, object]) -> str:
    """Replace every {{name}}; a placeholder without a value is an error, not a blank."""
    missing = sorted({name for name in _PLACEHOLDER.findall(text) if name not in values})
    if missing:
        raise KeyError(f"template values missing: {', '.join(missing)}")
    return _PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), text)


def render(template: str, values: dict[str, object], target: Path) -> Path:
    """Render docs/templates/<template> to target."""
    target.write_text(render_text((TEMPLATES / template).read_text(), values))
    return target
