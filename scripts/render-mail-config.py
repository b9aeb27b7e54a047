"""Render the production Postfix and Dovecot configuration from chatmail_services/templates/.

    .venv/bin/python scripts/render-mail-config.py --config /etc/chatmail/chatmail.ini \\
        --tls-cert /etc/ssl/certs/chat.pem --tls-key /etc/ssl/private/chat.key --out DIR

writes DIR/postfix/ (main.cf, master.cf and their maps),
DIR/dovecot/{dovecot.conf,chatmail-auth.conf.ext,push_notification.lua} and, when
[metadata] turn_host is set, DIR/coturn/turnserver.conf, filled with the production values that
docs/relay.md lists. The local relay (scripts/relay.sh) renders the same templates.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from chatmail_services.config import load_config
from chatmail_services.mailconfig import (
    POSTFIX_COPIED,
    POSTFIX_RENDERED,
    production_turn_values,
    production_values,
)
from chatmail_services.templating import TEMPLATES, render


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="chatmail.ini (default: as the services find it)")
    parser.add_argument("--tls-cert", required=True)
    parser.add_argument("--tls-key", required=True)
    parser.add_argument("--mail-user", default="vmail")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    config = load_config(args.config)
    values = production_values(config, args.tls_cert, args.tls_key, args.mail_user)
    for part in ("postfix", "dovecot"):
        (args.out / part).mkdir(parents=True, exist_ok=True)
    for name in POSTFIX_RENDERED:
        render(f"postfix/{name}", values, args.out / "postfix" / name)
    for name in POSTFIX_COPIED:
        shutil.copy(TEMPLATES / "postfix" / name, args.out / "postfix" / name)
    for name in ("dovecot.conf", "chatmail-auth.conf.ext"):
        render(f"dovecot/{name}", values, args.out / "dovecot" / name)
    shutil.copy(TEMPLATES / "dovecot" / "push_notification.lua", args.out / "dovecot")
    if config.metadata.turn_host:
        (args.out / "coturn").mkdir(exist_ok=True)
        target = args.out / "coturn" / "turnserver.conf"
        render("coturn/turnserver.conf", production_turn_values(config), target)
        (args.out / "coturn" / "turnserver.conf").chmod(0o640)  # it holds the secret
    print(f"rendered into {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
