"""Command line of chatmail-metadata: `serve`."""

from __future__ import annotations

import ssl

from chatmail_services import dictserver
from chatmail_services.cli import (
    add_dict_serve_command,
    build_or_exit,
    command_parser,
    load_or_exit,
    log_config_warnings,
)
from chatmail_services.config import Config, SettingsError
from chatmail_services.logsetup import setup_logging
from chatmail_services.metrics import Registry
from chatmail_services.textfile import config_publisher

from .metrics import MetadataMetrics
from .notifier import Notifier, https_post
from .notifyqueue import Policy, Queue
from .session import Notify, Session, Settings, forget_token, settings_from_config


def _notifier(
    config: Config, settings: Settings, metrics: MetadataMetrics | None = None
) -> Notifier | None:
    """The notifier of the config, or None when `notify_url` is empty."""
    section = config.metadata
    if not section.notify_url:
        return None
    try:
        context = ssl.create_default_context(cafile=section.notify_ca_file or None)
    except OSError as exc:
        raise SettingsError(f"[metadata] notify_ca_file: cannot read: {exc.strerror}") from None
    queue = Queue(section.queue_dir, section.notify_queue_max)
    if not queue.dir.is_dir():
        raise SettingsError(f"[metadata] queue_dir: {section.queue_dir} is not a directory")
    return Notifier(
        queue,
        Policy(section.notify_retry_base, section.notify_give_up_after),
        https_post(section.notify_url, context, section.notify_timeout),
        lambda address, token: forget_token(settings, address, token),
        section.notify_concurrency,
        metrics,
    )


def service_from_config(
    config: Config, metrics: MetadataMetrics | None = None
) -> tuple[Settings, Notifier | None]:
    """The session settings and the notifier; `SettingsError` when they cannot be made."""
    settings = settings_from_config(config)
    return settings, _notifier(config, settings, metrics)


def main(argv: list[str] | None = None) -> int:
    parser = command_parser(
        "chatmail-metadata",
        "Dovecot IMAP METADATA responder: push device tokens and server keys.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_dict_serve_command(sub)
    args = parser.parse_args(argv)
    config = load_or_exit(args.config)
    setup_logging(config.chatmail.log_level, "chatmail.metadata")
    log_config_warnings(config)
    metrics = MetadataMetrics(Registry()) if config.chatmail.metrics_dir else None
    settings, notifier = build_or_exit(lambda c: service_from_config(c, metrics), config)
    notify: Notify | None = None
    if notifier is not None:
        notifier.start()
        notify = notifier.notify
        if metrics is not None:
            metrics.watch(notifier.queue)
    publisher = config_publisher(config, "chatmail-metadata", metrics.registry) if metrics else None
    socket_path = args.socket or config.metadata.socket
    try:
        return dictserver.serve(
            lambda: Session(settings, notify, metrics=metrics), socket_path, "metadata"
        )
    finally:
        if notifier is not None:
            notifier.stop()
        if publisher is not None:
            publisher.stop()
