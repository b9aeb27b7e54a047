"""Command line of chatmail-mxdeliv: `serve`, mail from other relays over HTTPS (`/mxdeliv`)."""

from __future__ import annotations

import asyncio
import logging

from chatmail_services import dictserver
from chatmail_services.activation import inherited_sockets, notify_ready
from chatmail_services.cli import command_parser, load_or_exit, log_config_warnings
from chatmail_services.config import Config
from chatmail_services.logsetup import setup_logging
from chatmail_services.metrics import Registry
from chatmail_services.textfile import config_publisher

from .app import settings_from_config
from .metrics import MxdelivMetrics
from .server import MxdelivServer


def cmd_serve(config: Config, socket_path: str) -> int:
    """Serve `/mxdeliv` on the inherited sockets (socket activation), else on `socket_path`."""
    log = logging.getLogger("chatmail.mxdeliv")
    listeners = inherited_sockets()
    if listeners:
        log.info("serving %d inherited socket(s)", len(listeners))
    else:
        try:
            listeners = [dictserver.bind(socket_path)]
        except OSError as exc:
            log.error("cannot listen on %s: %s", socket_path, exc.strerror)
            return 1
        log.info("listening on %s", socket_path)
    metrics = MxdelivMetrics(Registry()) if config.chatmail.metrics_dir else None
    server = MxdelivServer(settings_from_config(config), listeners, metrics)
    publisher = config_publisher(config, "chatmail-mxdeliv", metrics.registry) if metrics else None

    async def run() -> None:
        server.install_signal_handlers()
        notify_ready()
        await server.serve()

    try:
        asyncio.run(run())
    finally:
        if publisher is not None:
            publisher.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = command_parser(
        "chatmail-mxdeliv",
        "Mail from other relays over HTTPS (POST /mxdeliv, behind nginx), checked by Postfix.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser("serve", help="serve /mxdeliv over HTTP (socket activation)")
    serve.add_argument("--socket", metavar="PATH", help="socket path without socket activation")
    args = parser.parse_args(argv)
    config = load_or_exit(args.config)
    setup_logging(config.chatmail.log_level, "chatmail.mxdeliv")
    log_config_warnings(config)
    return cmd_serve(config, args.socket or config.federation.socket)
