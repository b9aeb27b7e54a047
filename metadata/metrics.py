"""chatmail-metadata's metrics: device tokens stored, notification attempts by result, retries,
drops, and the queue's length and oldest entry (read from the queue when written)."""

from __future__ import annotations

import time

from chatmail_services.metrics import Registry

from . import notifyqueue
from .notifyqueue import Outcome, Queue

SENT, FAILED, GONE = "sent", "failed", "gone"


class MetadataMetrics:
    """The responder's metrics in `registry`; `watch(queue)` adds the queue's gauges."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.tokens_stored = registry.counter(
            "chatmail_metadata_tokens_stored", "device tokens set by clients and stored"
        )
        self.tokens_refused = registry.counter(
            "chatmail_metadata_tokens_refused", "device tokens refused (not a valid token)"
        )
        self.notifications = registry.counter(
            "chatmail_metadata_notifications",
            "POSTs to the notification service, by result: sent (2xx), failed (no answer or "
            "another status), gone (410: the token was removed)",
            ("result",),
        )
        for result in (SENT, FAILED, GONE):
            self.notifications.declare(result)
        self.retried = registry.counter(
            "chatmail_metadata_notifications_retried", "failed notifications scheduled again"
        )
        self.dropped = registry.counter(
            "chatmail_metadata_notifications_dropped",
            "notifications dropped, by reason: given_up (still failing after "
            "[metadata] notify_give_up_after; the full queue's drops are counted apart)",
            ("reason",),
        )
        self.dropped.declare("given_up")

    def watch(self, queue: Queue) -> None:
        """The queue's length, oldest entry and drops, read when the file is written."""
        self.registry.sampled(
            "chatmail_metadata_notify_queue_length", "notifications waiting", lambda: len(queue)
        )
        self.registry.sampled(
            "chatmail_metadata_notify_queue_oldest_seconds",
            "age of the oldest waiting notification (0: none waits)",
            lambda: queue.oldest_age(time.time()),
        )
        self.registry.sampled(
            "chatmail_metadata_notifications_queue_full",
            "notifications dropped because the queue was full ([metadata] notify_queue_max)",
            lambda: queue.dropped_total,
            kind="counter",
        )

    def attempt(self, outcome: Outcome) -> None:
        """Count one POST's outcome (`notifyqueue.after_attempt`)."""
        if outcome == notifyqueue.DONE:
            self.notifications.inc(SENT)
        elif outcome == notifyqueue.FORGET_TOKEN:
            self.notifications.inc(GONE)
        else:
            self.notifications.inc(FAILED)
            if outcome == notifyqueue.GIVE_UP:
                self.dropped.inc("given_up")
            else:
                self.retried.inc()
