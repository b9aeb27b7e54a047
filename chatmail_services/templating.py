"""The configuration templates the package ships, and filling their {{name}} placeholders.

The templates in chatmail_services/templates/ are the one source of the Postfix, Dovecot and
coturn configuration: the setup command, the local relay and the tests render the same files.
"""

from __future__ import annotations

import re
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent / "templates"

PLACEHOLDER = re.compile(r"\{\{\s*([a-z_0-9]+)\s*\}\}")


def render_text(text: str, values: dict[str, object]) -> str:
    """Replace every {{name}}; a placeholder without a value is an error, not a blank."""
    missing = sorted({name for name in PLACEHOLDER.findall(text) if name not in values})
    if missing:
        raise KeyError(f"template values missing: {', '.join(missing)}")
    return PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), text)


def template_text(template: str) -> str:
    """The text of chatmail_services/templates/<template>."""
    return (TEMPLATES / template).read_text()


def render_template(template: str, values: dict[str, object]) -> str:
    """chatmail_services/templates/<template> with its placeholders filled."""
    return render_text(template_text(template), values)


def render(template: str, values: dict[str, object], target: Path) -> Path:
    """Render chatmail_services/templates/<template> to target."""
    target.write_text(render_template(template, values))
    return target
