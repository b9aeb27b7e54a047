"""The values of nginx's port-443 stream (chatmail_services/templates/nginx/chatmail-stream.conf).

Port 443 carries IMAP, SMTP and HTTPS, told apart by the client's TLS ALPN; the HTTPS server
listens behind it on a loopback port (`https_backend` in the http template's values). Production
(the setup command) and the test harness render the same template; only addresses, ports and
paths differ. The loopback ports of production are here, once.
"""

from __future__ import annotations

from dataclasses import dataclass

from chatmail_services.templating import render_template

TEMPLATE = "nginx/chatmail-stream.conf"
# Debian's nginx includes modules-enabled/*.conf in its main context, where stream {} belongs;
# libnginx-mod-stream's 50-mod-stream.conf, which loads the module, sorts before this name.
PRODUCTION_FILE = "/etc/nginx/modules-enabled/60-chatmail-stream.conf"
STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class StreamPorts:
    """Where port 443 leads: the HTTPS server behind it, the two hops that take the PROXY
    header off, and Postfix's SMTPS and Dovecot's IMAPS ports they pass on to; all on
    `address` (a loopback address)."""

    address: str = LOOPBACK
    https_backend: int = 8443
    smtps_hop: int = 8465
    imaps_hop: int = 8993
    smtps: int = 465
    imaps: int = 993

    def https_backend_address(self) -> str:
        return f"{self.address}:{self.https_backend}"


PRODUCTION_STREAM = StreamPorts()


def _listen(addresses: tuple[str, ...], port: int) -> str:
    return "\n".join(f"        listen {address}:{port};" for address in addresses)


def stream_values(
    ports: StreamPorts,
    *,
    listen_addresses: tuple[str, ...] = ("0.0.0.0", "[::]"),
    port: int = 443,
    error_log: str = "/var/log/nginx/error.log",
) -> dict[str, str]:
    """Template values: the public listeners, the loopback targets."""
    at = ports.address
    return {
        "listen_stream": _listen(listen_addresses, port),
        "https_backend": ports.https_backend_address(),
        "smtps_hop": f"{at}:{ports.smtps_hop}",
        "imaps_hop": f"{at}:{ports.imaps_hop}",
        "smtps_target": f"{at}:{ports.smtps}",
        "imaps_target": f"{at}:{ports.imaps}",
        "stream_source": at,
        "error_log": error_log,
    }


def render_stream(ports: StreamPorts, **kwargs: object) -> str:
    """The rendered stream configuration (keyword arguments as `stream_values`)."""
    return render_template(TEMPLATE, stream_values(ports, **kwargs))  # type: ignore[arg-type]
