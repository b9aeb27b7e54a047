"""run_until_signal: a stop signal ends the process at once, even while serve() blocks them."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from chatmail_services.milter.lifecycle import STOP_SIGNALS, run_until_signal

# serve() behaves like libmilter: it blocks the stop signals in its own thread, then waits
# (libmilter's listener sleeps in select() up to 5 s between looks at its stop flag)
CHILD = """
import signal, sys, time
from chatmail_services.milter.lifecycle import STOP_SIGNALS, run_until_signal

def serve():
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    print("serving", flush=True)
    time.sleep(30)

run_until_signal(serve, lambda name: print("stopped by", name, flush=True))
sys.exit(3)  # not reached: the stop exits 0
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_stop_signal_exits_0_at_once(signum):
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True, cwd="/"
    )
    try:
        assert proc.stdout.readline() == "serving\n"
        start = time.monotonic()
        proc.send_signal(signum)
        assert proc.wait(10) == 0
        assert time.monotonic() - start < 1.0
        assert proc.stdout.read() == f"stopped by {signal.Signals(signum).name}\n"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_returning_or_failing_ends_the_wait_and_restores_the_handlers():
    before = [signal.getsignal(s) for s in STOP_SIGNALS]
    assert run_until_signal(lambda: None, print) is None
    assert [signal.getsignal(s) for s in STOP_SIGNALS] == before

    def broken() -> None:
        raise RuntimeError("no socket")

    with pytest.raises(RuntimeError, match="no socket"):
        run_until_signal(broken, print)
