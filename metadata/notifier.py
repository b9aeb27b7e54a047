"""The notifier: one HTTPS POST per queued notification to the notification service, from a
few worker threads, never in the way of a dict reply (so never delaying a delivery).

200 (any 2xx): done. 410: the token is dead, so it is removed from the account. Anything else,
or no answer: again later (`notifyqueue.after_attempt`), until `give_up_after`. Due
notifications wait in a heap by time; at most `concurrency` POSTs run at once. What the full
queue dropped is logged (`Queue.report_dropped`): the scheduler wakes for it every
`REPORT_EVERY` seconds.
"""

from __future__ import annotations

import concurrent.futures
import heapq
import logging
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import notifyqueue
from .notifyqueue import Pending, Policy, Queue

if TYPE_CHECKING:
    from .metrics import MetadataMetrics

log = logging.getLogger("chatmail.metadata")

Post = Callable[[str], int | None]


def https_post(url: str, context: ssl.SSLContext, timeout: float) -> Post:
    """POST the token as the body; the HTTP status, or None when there was no answer."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=context), urllib.request.ProxyHandler({})
    )

    def post(token: str) -> int | None:
        request = urllib.request.Request(url, data=token.encode("ascii"), method="POST")
        request.add_header("Content-Type", "application/octet-stream")
        try:
            with opener.open(request, timeout=timeout) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except (OSError, ValueError) as exc:
            log.info("notification service not reached: %s", type(exc).__name__)
            return None

    return post


class Notifier:
    def __init__(
        self,
        queue: Queue,
        policy: Policy,
        post: Post,
        forget_token: Callable[[str, str], None],
        concurrency: int = 8,
        metrics: MetadataMetrics | None = None,
    ) -> None:
        self.queue = queue
        self.metrics = metrics
        self.policy = policy
        self.post = post
        self.forget_token = forget_token
        self.concurrency = concurrency
        self.pool = concurrent.futures.ThreadPoolExecutor(concurrency, "chatmail-notify")
        self._heap: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        self._in_flight = 0
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="chatmail-notify-sched", daemon=True)

    def start(self) -> Notifier:
        pending = self.queue.load()
        if pending:
            log.info("%d queued notification(s) from before the start", len(pending))
        self.submit(pending)
        self._thread.start()
        return self

    def notify(self, address: str, tokens: list[str]) -> None:
        """A message for `address`: queue (durably) and schedule its notifications."""
        self.submit(self.queue.put(address, tokens, time.time()))

    def submit(self, pending: list[Pending]) -> None:
        with self._cond:
            for item in pending:
                heapq.heappush(self._heap, (item.next_try, item.id))
            self._cond.notify()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop sending; POSTs under way get `timeout` to finish; the rest stays queued."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.queue.report_dropped(time.time(), force=True)

    def _run(self) -> None:
        with self._cond:
            while not self._stopping:
                now = time.time()
                self.queue.report_dropped(now)
                while self._heap and self._heap[0][0] <= now and self._in_flight < self.concurrency:
                    _, ident = heapq.heappop(self._heap)
                    item = self.queue.begin(ident)
                    if item is None:
                        continue
                    self._in_flight += 1
                    self.pool.submit(self._send, item)
                wait = notifyqueue.REPORT_EVERY
                if self._heap and self._in_flight < self.concurrency:
                    wait = min(wait, self._heap[0][0] - now)
                self._cond.wait(max(0.0, wait))

    def _send(self, item: Pending) -> None:
        try:
            self._attempt(item)
        except Exception:
            log.exception("internal error sending a notification")
        finally:
            with self._cond:
                self._in_flight -= 1
                self._cond.notify()

    def _attempt(self, item: Pending) -> None:
        status = self.post(item.token)
        now = time.time()
        outcome = notifyqueue.after_attempt(item, status, now, self.policy)
        if self.metrics is not None:
            self.metrics.attempt(outcome)
        if outcome == notifyqueue.DONE:
            log.debug("notified %s", item.address)
        elif outcome == notifyqueue.FORGET_TOKEN:
            self.forget_token(item.address, item.token)
            log.info("device token removed: the notification service no longer knows it")
        elif outcome == notifyqueue.GIVE_UP:
            log.warning("notification given up after %d attempts", item.attempts + 1)
        else:
            log.info("notification answered %s, retry %d later", status, outcome.attempts)
        kept = self.queue.end(item, outcome, now)
        if kept is not None:
            self.submit([kept])
