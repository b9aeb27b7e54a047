"""The values of the nginx template (chatmail_services/templates/nginx/chatmail.conf).

Production (the setup command) and the test harness render the same template with
`nginx_values`; only the listen addresses, ports and paths differ. The per-client limit of
`/new` (rate, burst, zone size) comes from `[web]`, whether `/mxdeliv` is open from
`[federation]`.
"""

from __future__ import annotations

from chatmail_services.address import ipv4_domain
from chatmail_services.config import Config
from chatmail_services.templating import render_template

from .nginxstream import PRODUCTION_STREAM, StreamPorts

TEMPLATE = "nginx/chatmail.conf"
# certbot's --webroot-path: Debian nginx's default root, so that the first certificate (taken
# before chatmail-setup, through Debian's default site) and the renewals (through ours) use
# the same directory.
ACME_ROOT = "/var/www/html"
ERROR_LOG = "/var/log/nginx/error.log"


def server_names(domain: str) -> str:
    """The names the relay's web server answers: the domain and its three helpers (a relay
    without a domain name: its address only)."""
    if ipv4_domain(domain):
        return domain
    return " ".join([domain, f"www.{domain}", f"mta-sts.{domain}", f"autoconfig.{domain}"])


def _listen(addresses: list[str], port: int, params: str) -> str:
    return "\n".join(f"    listen {address}:{port}{params};" for address in addresses)


def nginx_values(
    config: Config,
    *,
    tls_cert: str,
    tls_key: str,
    web_root: str | None = None,
    web_socket: str | None = None,
    mxdeliv_socket: str | None = None,
    listen_addresses: tuple[str, ...] = ("0.0.0.0", "[::]"),
    http_port: int = 80,
    stream: StreamPorts = PRODUCTION_STREAM,
    acme_root: str = ACME_ROOT,
    error_log: str = ERROR_LOG,
) -> dict[str, str]:
    """Template values; web root and sockets default to the config's `[web]` and
    `[federation]` settings."""
    addresses = list(listen_addresses)
    web = config.web
    return {
        "server_names": server_names(config.chatmail.mail_domain),
        "redirect_host": config.chatmail.mail_domain,
        "listen_http_default": _listen(addresses, http_port, " default_server"),
        "listen_http": _listen(addresses, http_port, ""),
        # behind the stream on 443 (web/nginxstream.py), on loopback
        "listen_https": f"    listen {stream.https_backend_address()} ssl proxy_protocol;",
        "stream_source": stream.address,
        "tls_cert": tls_cert,
        "tls_key": tls_key,
        "web_root": web_root or config.web.root,
        "web_socket": web_socket or config.web.socket,
        "acme_root": acme_root,
        "error_log": error_log,
        "new_client_rate": f"{web.new_client_per_minute}r/m",
        "new_client_burst": str(web.new_client_burst),
        "new_client_zone": str(web.new_client_zone),
        **mxdeliv_values(config, mxdeliv_socket),
    }


def mxdeliv_values(config: Config, socket: str | None = None) -> dict[str, str]:
    """`location /mxdeliv`: chatmail-mxdeliv's socket, the largest body, and the gate that
    answers 404 when `[federation] https = no`."""
    federation = config.federation
    gate = (
        "# [federation] https = yes"
        if federation.https
        else "return 404;  # [federation] https = no"
    )
    return {
        "mxdeliv_gate": gate,
        "mxdeliv_socket": socket or federation.socket,
        "max_message_size": str(config.chatmail.max_message_size),
    }


def render_nginx(config: Config, **kwargs: object) -> str:
    """The rendered server configuration (keyword arguments as `nginx_values`)."""
    return render_template(TEMPLATE, nginx_values(config, **kwargs))  # type: ignore[arg-type]
