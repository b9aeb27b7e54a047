#!/usr/bin/env bash
# Install everything the relay and the test suite need on a fresh Debian 12 machine (as root).
# Idempotent: a second run only checks. Creates the virtualenv in $VENV (default .venv).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
VENV=${VENV:-$here/.venv}

DEB_PACKAGES=(
  # the mail stack the services sit beside
  postfix dovecot-core dovecot-imapd dovecot-lmtpd
  # libmilter (pymilter builds against it; miltertest drives it), systemd-python's build deps
  libmilter-dev miltertest libsystemd-dev pkg-config gcc python3-dev python3-venv
  # test tools: SMTP client, GnuPG, TLS certs, socket activation, process listing
  swaks gnupg openssl systemd procps psmisc util-linux
  # the Debian package build and its checks
  debhelper dh-python python3-all python3-setuptools python3-milter python3-systemd
  lintian fakeroot dpkg-dev
  # pybuild builds the package from pyproject.toml (PEP 517; there is no setup.py)
  pybuild-plugin-pyproject python3-wheel
  # the package's maintainer scripts (adduser) and its man page checks (man, groff)
  adduser man-db groff-base
  # the package test loads the units' system call filter into the services it starts
  python3-seccomp
  # the reaper's real-Dovecot test runs chatmail-expire days "later" (libfaketime)
  faketime
  # chatmail-auth hashes with libxcrypt's crypt_rn (ctypes); bench/auth compiles its client
  libcrypt1
  # DKIM and DNS (the package's dependencies), the test DNS server (nsd, authoritative from
  # zone files), and a second DKIM milter the benchmark compares against
  python3-dkim python3-dnspython python3-cryptography nsd opendkim opendkim-tools
  # the package tests boot Debian in a container with systemd as its PID 1 (debootstrap builds
  # the root, systemd-nspawn boots it, zstd packs the cached root); --no-install-recommends
  # below keeps libnss-mymachines out of this machine's nsswitch.conf
  debootstrap systemd-container zstd
  # the web server in front of chatmail-web (tests run a private one), the QR code library of
  # the package (python3-segno; the virtualenv gets segno from PyPI), and the web tests' tools:
  # headless Chromium for screenshots, zbarimg to decode the QR code in them
  nginx python3-segno chromium zbar-tools
  # nginx's stream module (ssl_preread): IMAP and SMTP on port 443 beside HTTPS, by TLS ALPN
  libnginx-mod-stream
  # the Lua front end of chatmail-auth (Dovecot 2.4's only way; tested here on 2.3): Dovecot's
  # Lua passdb/userdb, and the script's socket and JSON modules
  dovecot-auth-lua lua-socket lua-cjson
  # the TURN server for calls (configured from chatmail_services/templates/coturn/; tests start their own)
  coturn
  # metrics and alerts: promtool (prometheus) checks the metric files and tests the alerting
  # rules; the node exporter reads the services' textfiles (tests run their own on loopback)
  prometheus prometheus-node-exporter
)

# One dpkg-query for all of them: what is not "install ok installed" is missing.
installed=$(dpkg-query -W -f='${Package} ${Status}\n' "${DEB_PACKAGES[@]}" 2>/dev/null |
  awk '$NF == "installed" && $(NF-1) == "ok" { print $1 }' || true)
missing=()
for p in "${DEB_PACKAGES[@]}"; do
  grep -qxF "$p" <<<"$installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  # postfix asks how to configure itself: the services bring their own configs.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The mail user of the test suite and the local relay (production uses "vmail", which the
# Debian package creates and removes; tests must not depend on or disturb it).
id chatmaildev >/dev/null 2>&1 ||
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin chatmaildev

# The virtualenv: (re)installed when this script or the project's metadata changed since the
# last install (a stamp in the venv records their checksum), so a second run takes no time.
stamp="$VENV/.chatmail-deps-stamp"
want=$(cat "$0" "$here/setup.cfg" "$here/pyproject.toml" | sha256sum | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ]; then
  /usr/bin/python3 -m venv "$VENV"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  # pip's chatter (build warnings) goes to a log, shown only when the install fails.
  log="$VENV/pip-install.log"
  if ! { "$VENV/bin/pip" install -q --disable-pip-version-check --upgrade pip setuptools wheel &&
    "$VENV/bin/pip" install -q --disable-pip-version-check -e "$here[test]"; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "install-deps: pip install failed (log: $log)" >&2
    exit 1
  fi
  echo "$want" >"$stamp"
fi
