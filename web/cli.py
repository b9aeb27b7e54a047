"""Command line of chatmail-web: `serve` (the `/new` service) and `site DIR` (the pages)."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

from chatmail_services import dictserver
from chatmail_services.activation import inherited_sockets, notify_ready
from chatmail_services.cli import command_parser, load_or_exit, log_config_warnings
from chatmail_services.config import Config
from chatmail_services.logsetup import setup_logging
from chatmail_services.metrics import Registry
from chatmail_services.textfile import config_publisher

from .metrics import WebMetrics
from .newaccount import NewAccounts, settings_from_config
from .ratewindow import RateWindow
from .server import WebServer
from .site import write_site


def cmd_serve(config: Config, socket_path: str) -> int:
    """Serve `/new` on the inherited sockets (socket activation), else on `socket_path`."""
    log = logging.getLogger("chatmail.web")
    dictserver.raise_fd_limit()  # one descriptor per connection, up to MAX_CONNECTIONS and more
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
    app = NewAccounts(
        settings_from_config(config), RateWindow(config.web.new_per_window, config.web.new_window)
    )
    metrics = WebMetrics(Registry()) if config.chatmail.metrics_dir else None
    server = WebServer(app, listeners, metrics)
    publisher = config_publisher(config, "chatmail-web", metrics.registry) if metrics else None

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
        "chatmail-web",
        "Account creation over HTTP (/new, behind nginx) and the relay's web pages.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser("serve", help="serve /new over HTTP (socket activation)")
    serve.add_argument("--socket", metavar="PATH", help="socket path without socket activation")
    site = sub.add_parser("site", help="write the relay's pages into DIR (default: [web] root)")
    site.add_argument("dir", metavar="DIR", nargs="?", help="target directory")
    args = parser.parse_args(argv)
    config = load_or_exit(args.config)
    if args.command == "site":
        target = Path(args.dir or config.web.root)
        try:
            written = write_site(config, target)
        except OSError as exc:
            print(f"chatmail-web: cannot write {target}: {exc.strerror}", file=sys.stderr)
            return 1
        for path in written:
            print(path)
        return 0
    setup_logging(config.chatmail.log_level, "chatmail.web")
    log_config_warnings(config)
    return cmd_serve(config, args.socket or config.web.socket)
