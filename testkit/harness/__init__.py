"""Real Postfix, Dovecot and our services on loopback, for tests, benchmarks and scripts/relay.sh.

Configurations are rendered from the production templates in chatmail_services/templates/.
"""

from __future__ import annotations

import os
import pwd
import tempfile
from pathlib import Path

from chatmail_services.templating import TEMPLATES  # noqa: F401  (re-exported)

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"

# The mail user of tests and the local relay; scripts/install-deps.sh creates it.
MAIL_USER = "chatmaildev"


def mail_ids() -> tuple[int, int]:
    """(uid, gid) of MAIL_USER."""
    entry = pwd.getpwnam(MAIL_USER)
    return entry.pw_uid, entry.pw_gid


def stack_dir(prefix: str = "chatmail-stack-") -> Path:
    """A fresh directory the mail user can traverse (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=os.environ.get("CHATMAIL_STACK_TMP", "/tmp")))
    path.chmod(0o755)
    return path


def read_logs(*paths: Path) -> str:
    """The text of those of `paths` that exist, one after the other."""
    return "\n".join(p.read_text(errors="replace") for p in paths if p.exists())
