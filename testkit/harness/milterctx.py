"""pymilter's test context (Milter.testctx.TestCtx) with CONNECT as libmilter delivers it."""

from __future__ import annotations

import socket

import Milter
from Milter import testctx


class MilterCtx(testctx.TestCtx):
    """TestCtx whose CONNECT passes the client's address as libmilter does, `(ip, port)`,
    and, like libmilter, goes on to HELO after a no-reply CONNECT (NOREPLY), where pymilter's
    own TestCtx would close the connection."""

    def _connect(self, host: str = "localhost", helo: str = "spamrelay", ip: str = "1.2.3.4"):
        self._negotiate()
        if self._protocol & Milter.P_NOCONNECT:
            return Milter.CONTINUE
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        self._stage = Milter.M_CONNECT
        rc = Milter.connect_callback(self, host, family, (ip, 4711))
        self._stage = None
        if rc == Milter.NOREPLY:
            rc = Milter.CONTINUE
        if rc != Milter.CONTINUE:
            self._close()
            return rc
        return self._helo(helo)
