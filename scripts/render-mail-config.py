"""Render the production Postfix and Dovecot configuration from docs/templates/.

    .venv/bin/python scripts/render-mail-config.py --config /etc/chatmail/chatmail.ini \\
        --tls-cert /etc/ssl/certs/chat.pem --tls-key /etc/ssl/private/chat.key --out DIR

writes DIR/postfix/ (main.cf, master.cf and their maps),
DIR/dovecot/{dovecot.conf,chatmail-auth.conf.ext,push_notification.lua} and, when
[metadata] turn_host is set, DIR/coturn/turnserver.conf, filled with the production values that
docs/relay.md lists. The local relay (scripts/relay.sh) renders the same templates.
"""

from __future__ import annotations

import argparse
import pwd
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from harness import TEMPLATES
from harness.render import (
    POSTFIX_COPIED,
    POSTFIX_RENDERED,
    SYSTEM_CA_FILE,
    postfix_values,
    render,
    turn_values,
)

from chatmail_services.config import load_config

# coturn on a production relay: every IPv4 address, relay addresses chosen by coturn, no
# log (its session lines name client addresses), Debian's pid file.
PRODUCTION_TURN = {
    "turn_listen": "0.0.0.0",
    "turn_relay_ips": "",
    "turn_log": "/dev/null",
    "turn_pid": "/run/turnserver/turnserver.pid",
}


def production_values(config, cert: str, key: str, mail_user: str) -> dict[str, object]:
    """The placeholder values of a production relay (Debian paths, standard ports)."""
    entry = pwd.getpwnam(mail_user)
    return {
        **postfix_values(config),
        "mailboxes_dir": config.chatmail.mailboxes_dir,
        "tls_ca_file": SYSTEM_CA_FILE,
        "inet_protocols": "all",
        "tls_cert": cert,
        "tls_key": key,
        "config_dir": "/etc/postfix",
        "smtp_listen": "smtp",
        "submission_listen": "submission",
        "smtps_listen": "submissions",
        "chroot": "y",
        "listen": "*, ::",
        "base_dir": "/run/dovecot",
        "state_dir": "/var/lib/dovecot",
        "log_path": "syslog",
        "mail_uid": entry.pw_uid,
        "mail_gid": entry.pw_gid,
        "mail_user": mail_user,
        "auth_dict_conf": "/etc/dovecot/chatmail-auth.conf.ext",
        "auth_socket": "/run/chatmail/auth.sock",
        "metadata_socket": "/run/chatmail/metadata.sock",
        "push_lua": "/etc/dovecot/push_notification.lua",
        "expire_command": "/usr/bin/chatmail-expire",
        "chatmail_config": "/etc/chatmail/chatmail.ini",
        "imap_port": 143,
        "imaps_port": 993,
        "lmtp_socket": "/var/spool/postfix/private/dovecot-lmtp",
        "sasl_socket": "/var/spool/postfix/private/auth",
    }


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
        turn = {**turn_values(config), **PRODUCTION_TURN, "turn_port": config.metadata.turn_port}
        render("coturn/turnserver.conf", turn, args.out / "coturn" / "turnserver.conf")
        (args.out / "coturn" / "turnserver.conf").chmod(0o640)  # it holds the secret
    print(f"rendered into {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
