"""A plain Postfix on its own loopback address: a mail server outside the chatmail network.

Not configured from the chatmail templates: a minimal relay of its own (opportunistic TLS with
a self-signed certificate, no milter, no DKIM signing) that accepts mail from 127.0.0.0/8 and
forwards it by a transport map to the relays' port 25, as any other server on the internet
would. Tests hand it messages (signed beforehand, or not) over SMTP and read its log for what
the relay answered.
"""

from __future__ import annotations

import os
import pwd
import re
import time
from collections.abc import Mapping
from pathlib import Path

from .net import wait_for_tcp
from .postfix import flush, queue_ids, run_postfix, stop_postfix
from .tls import self_signed_cert

_MAIN = """\
compatibility_level = 3.6
myhostname = {hostname}
mydomain = {domain}
myorigin = $mydomain
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
smtp_bind_address = {address}
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtp_host_lookup = native
transport_maps = texthash:{dir}/transport
smtp_tls_security_level = may
smtp_tls_loglevel = 1
smtpd_tls_security_level = may
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
biff = no
alias_maps =
alias_database =
queue_directory = {dir}/queue
data_directory = {dir}/data
maillog_file = {dir}/maillog
maillog_file_prefixes = {dir}
in_flow_delay = 0
"""

_MASTER = """\
{address}:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class OutsidePostfix:
    """A classic mail server for `domain` on `address`:`port`.

    `routes` maps a destination domain to `host:port` (the relay's MX address); mail for its
    own domain (bounces coming back) is discarded.
    """

    def __init__(
        self,
        root: Path,
        routes: Mapping[str, str],
        *,
        domain: str = "outside.test",
        address: str = "127.0.0.4",
        port: int = 25,
    ) -> None:
        if not address.startswith("127."):
            raise ValueError(f"test servers listen on loopback only, not {address}")
        self.domain = domain
        self.address = address
        self.port = port
        self.dir = Path(root) / f"outside-{domain}"
        self.log_path = self.dir / "maillog"
        (self.dir / "queue").mkdir(parents=True, exist_ok=True)
        (self.dir / "data").mkdir(exist_ok=True)
        entry = pwd.getpwnam("postfix")
        os.chown(self.dir / "data", entry.pw_uid, entry.pw_gid)
        # Self-signed, as many classic servers' are: a relay's verified TLS must refuse it.
        cert, key = self_signed_cert(self.dir, domain)
        values = {
            "cert": cert,
            "key": key,
            "hostname": f"mx.{domain}",
            "domain": domain,
            "address": address,
            "port": port,
            "dir": self.dir,
        }
        (self.dir / "main.cf").write_text(_MAIN.format(**values))
        (self.dir / "master.cf").write_text(_MASTER.format(**values))
        transport = []
        for dest, target in routes.items():
            host, port_text = target.rsplit(":", 1)
            transport.append(f"{dest} smtp:[{host}]:{port_text}")
        transport.append(f"{domain} discard:")
        (self.dir / "transport").write_text("\n".join(transport) + "\n")
        check = run_postfix(self.dir, "check")
        if check.returncode != 0:
            raise RuntimeError(f"postfix check failed:\n{check.stdout}")

    def start(self) -> OutsidePostfix:
        result = run_postfix(self.dir, "start")
        if result.returncode != 0:
            raise RuntimeError(f"postfix start failed:\n{result.stdout}\n{self.log_text()}")
        wait_for_tcp(self.port, host=self.address)
        return self

    def stop(self) -> None:
        stop_postfix(self.dir, self.dir / "queue")

    def queue_ids(self) -> list[str]:
        return queue_ids(self.dir)

    def flush(self) -> None:
        flush(self.dir)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def outcome(self, message_id: str, timeout: float = 60.0) -> tuple[str, str]:
        """(status, reply) of the delivery attempt of the message with this Message-ID:
        status sent, deferred or bounced, as the outside server's log says. Waits for the
        first attempt not reported before this call."""
        seen = len(self.attempts(message_id))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            attempts = self.attempts(message_id)
            if len(attempts) > seen:
                return attempts[-1]
            time.sleep(0.1)
        raise TimeoutError(f"no delivery attempt of {message_id} in\n{self.log_text()[-5000:]}")

    def attempts(self, message_id: str) -> list[tuple[str, str]]:
        """Every delivery attempt logged so far for the message with this Message-ID."""
        log = self.log_text()
        ids = set(re.findall(rf"(\w+): message-id=<{re.escape(message_id)}>", log))
        found = []
        for line in log.splitlines():
            match = re.search(r" (\w+): to=<[^>]*>, relay=.* status=(\w+) \((.*)\)$", line)
            if match and match.group(1) in ids:
                found.append((match.group(2), match.group(3)))
        return found

    def __enter__(self) -> OutsidePostfix:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
