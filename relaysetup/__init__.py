"""chatmail-setup: a Debian server with the package installed becomes a relay.

From /etc/chatmail/chatmail.ini it renders the package's templates and installs the Postfix,
Dovecot, DKIM, TLS and coturn configuration (docs/setup.md). The parts are listed in `parts.py`;
computing what changes (`plan.py`), showing it (`diff.py`) and applying it with backups, checks
and reloads (`apply.py`) are separate steps.
"""
