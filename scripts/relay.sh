#!/usr/bin/env bash
# A complete chatmail relay on loopback (Postfix, Dovecot, the three services, a self-signed
# certificate), from nothing: installs what it needs, then runs until interrupted.
# Options go to scripts/relay.py (--state DIR, --domain D, --imaps-port N, ...; see --help).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/install-deps.sh"
exec "$here/.venv/bin/python" "$here/scripts/relay.py" "$@"
