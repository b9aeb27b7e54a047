"""Run libmilter in a thread, so that a stop signal ends the milter at once.

libmilter's own signal thread stops the listener only once the listener's select() returns,
which happens on a new connection or every 5 seconds (libmilter's MI_CHK_TIME), and it waits
for the listener's mutex meanwhile: every `systemctl stop` took up to 5 s, nearly 5 s right
after a connection. Here libmilter runs in a second thread (it blocks SIGTERM, SIGINT and
SIGHUP only there and in the threads it starts), the main thread keeps those signals, and
one of them ends the process with status 0 at once. Connections in progress end as they did
before (Postfix applies milter_default_action); a connection arriving meanwhile waits in the
listening socket, which systemd keeps, for the next start.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def run_until_signal(serve: Callable[[], None], on_stop: Callable[[str], None]) -> None:
    """Run serve() in a thread until it returns (or raises: re-raised here) or a stop signal.

    On a stop signal on_stop(signal name) runs, the logs are flushed and the process exits 0.
    """
    finished = threading.Event()
    failure: list[BaseException] = []

    def target() -> None:
        try:
            serve()
        except BaseException as exc:  # handed to the main thread
            failure.append(exc)
        finally:
            finished.set()

    def stop(signum: int, _frame: object) -> None:
        on_stop(signal.Signals(signum).name)
        logging.shutdown()
        os._exit(0)

    previous = {signum: signal.signal(signum, stop) for signum in STOP_SIGNALS}
    try:
        threading.Thread(target=target, name="libmilter", daemon=True).start()
        finished.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if failure:
        raise failure[0]
