"""A real authoritative DNS server (Debian's nsd) on a loopback address, port 53, for tests.

Port 53 because Postfix's resolver (libresolv) can only ask port 53; every address in
127.0.0.0/8 is on the loopback interface, so the default 127.53.0.1:53 disturbs nothing (the
machine's own resolver is never touched). Each zone is given as origin -> zone-file text; the
harness prepends $ORIGIN, $TTL, SOA and NS itself, so the text can be exactly what
`chatmail-dns` prints. No chroot, no remote control, no privilege drop (`username: ""`), all
files (config, zones, log, pid) under `root/nsd-<address>/`.
"""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import dns.exception
import dns.message
import dns.query
import dns.rcode

from . import read_logs

NSD = "/usr/sbin/nsd"
NSD_CHECKZONE = "/usr/sbin/nsd-checkzone"
TTL = 60

_CONF = """\
server:
    ip-address: {address}@{port}
    port: {port}
    do-ip4: yes
    do-ip6: no
    server-count: 1
    reuseport: no
    username: ""
    chroot: ""
    zonesdir: "{dir}"
    pidfile: "{dir}/nsd.pid"
    logfile: "{dir}/nsd.log"
    database: ""
    zonelistfile: "{dir}/zone.list"
    xfrdfile: "{dir}/xfrd.state"
    xfrdir: "{dir}"
    cookie-secret-file: "{dir}/cookiesecrets.txt"
    hide-version: yes
    verbosity: 2

remote-control:
    control-enable: no
"""

_ZONE = """\
zone:
    name: "{origin}"
    zonefile: "{file}"
"""

_HEADER = """\
$ORIGIN {origin}.
$TTL {ttl}
@ IN SOA ns.nameserver.invalid. hostmaster.nameserver.invalid. {serial} 3600 600 86400 {ttl}
@ IN NS ns.nameserver.invalid.
"""


def _die_with_parent() -> None:
    """In the child before exec: nsd gets SIGTERM when the test process dies (PR_SET_PDEATHSIG),
    so a killed test run leaves no server holding the address."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def _origin(name: str) -> str:
    """The origin without trailing dot, lower case (the key of `zones`)."""
    origin = name.strip().rstrip(".").lower()
    if not origin:
        raise ValueError("a zone needs a non-empty origin")
    return origin


class NameServer:
    """nsd serving `zones` (origin -> zone-file text without SOA/NS) on `address`:`port`."""

    def __init__(
        self,
        root: Path,
        address: str = "127.53.0.1",
        zones: Mapping[str, str] | None = None,
        *,
        port: int = 53,
    ) -> None:
        if not address.startswith("127."):
            raise ValueError(f"test servers listen on loopback only, not {address}")
        self.address = address
        self.port = port
        self.dir = Path(root) / f"nsd-{address}-{port}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / "nsd.conf"
        self.log_path = self.dir / "nsd.log"
        self.zones: dict[str, str] = {}
        self._serial = int(time.time())
        self._process: subprocess.Popen[bytes] | None = None
        for origin, text in (zones or {}).items():
            self._write_zone(origin, text)
        self._write_conf()

    @property
    def resolver(self) -> tuple[str, int]:
        """(address, port), as `[dkim] resolver` and `chatmail-dns --resolver` take it."""
        return self.address, self.port

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def zone_path(self, origin: str) -> Path:
        return self.dir / f"{_origin(origin)}.zone"

    def zone_text(self, origin: str) -> str:
        """The complete zone file served for `origin` (with the harness's SOA and NS)."""
        return self.zone_path(origin).read_text()

    def _write_zone(self, origin: str, text: str) -> None:
        origin = _origin(origin)
        self._serial += 1
        header = _HEADER.format(origin=origin, ttl=TTL, serial=self._serial)
        body = header + text + ("" if text.endswith("\n") else "\n")
        path = self.zone_path(origin)
        candidate = path.with_suffix(".new")
        candidate.write_text(body)
        check = subprocess.run(
            [NSD_CHECKZONE, origin, str(candidate)], capture_output=True, text=True, timeout=30
        )
        if check.returncode != 0:
            candidate.unlink()
            raise ValueError(f"zone {origin} does not load:\n{check.stdout}{check.stderr}")
        candidate.replace(path)
        self.zones[origin] = text

    def _write_conf(self) -> None:
        parts = [_CONF.format(address=self.address, port=self.port, dir=self.dir)]
        parts += [_ZONE.format(origin=o, file=self.zone_path(o)) for o in sorted(self.zones)]
        self.conf.write_text("\n".join(parts))

    def start(self, timeout: float = 15.0) -> NameServer:
        """Start nsd and wait until it answers the SOA of every zone."""
        if self.running:
            return self
        # Stale state from an earlier run would make nsd believe zones were transferred.
        for stale in ("zone.list", "xfrd.state", "nsd.pid"):
            (self.dir / stale).unlink(missing_ok=True)
        with open(self.dir / "stdout.log", "ab") as out:
            self._process = subprocess.Popen(
                [NSD, "-d", "-c", str(self.conf)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + timeout
        pending = set(self.zones) or {"."}
        while pending:
            if self._process.poll() is not None:
                self._process = None
                raise RuntimeError(f"nsd exited at start:\n{self.output()}")
            pending = {origin for origin in pending if not self._answers_soa(origin)}
            if pending and time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"nsd does not serve {sorted(pending)}:\n{self.output()}")
            if pending:
                time.sleep(0.05)
        return self

    def _answers_soa(self, origin: str) -> bool:
        request = dns.message.make_query(f"{origin}.", "SOA")
        try:
            response = dns.query.udp(request, self.address, port=self.port, timeout=0.5)
        except (OSError, dns.exception.DNSException):
            return False
        # For "." (no zones) any answer, even REFUSED, shows the server is up.
        return origin == "." or (response.rcode() == dns.rcode.NOERROR and bool(response.answer))

    def stop(self) -> None:
        """Stop nsd and wait until the process is gone (its sockets closed with it)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        self._wait_port_free()

    def _wait_port_free(self, timeout: float = 10.0) -> None:
        # nsd's serving child closes its sockets a moment after the main process: wait until
        # the UDP port can be bound again, i.e. nothing answers there any more.
        deadline = time.monotonic() + timeout
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                try:
                    probe.bind((self.address, self.port))
                    return
                except OSError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"nsd still holds {self.address}:{self.port}") from None
            time.sleep(0.05)

    def set_zone(self, origin: str, text: str) -> None:
        """Serve `text` (zone-file records) for `origin` from now on, a new zone or a changed one.

        nsd is restarted if it runs; a zone that does not load raises ValueError and the old
        one stays.
        """
        self._write_zone(origin, text)
        self._reload()

    def remove_zone(self, origin: str) -> None:
        """Stop serving `origin` (queries for it are then refused)."""
        origin = _origin(origin)
        self.zones.pop(origin)
        self.zone_path(origin).unlink(missing_ok=True)
        self._reload()

    def _reload(self) -> None:
        self._write_conf()
        if self.running:
            self.stop()
            self.start()

    def output(self) -> str:
        return read_logs(self.dir / "stdout.log", self.log_path)

    def __enter__(self) -> NameServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
