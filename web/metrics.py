"""chatmail-web's metrics: responses by HTTP status, accounts handed out.

Only what chatmail-web answers: nginx's own refusals (its per-client `limit_req` 429, a body
too large) stay in nginx's log. The status is a label of a fixed, small set (`CODES` are
declared; any other code the server may give is counted too).
"""

from __future__ import annotations

from chatmail_services.metrics import Registry

# what web/server.py and web/newaccount.py answer
CODES = (200, 302, 400, 404, 405, 408, 413, 429, 431, 500, 501, 503, 505)


class WebMetrics:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.responses = registry.counter(
            "chatmail_web_responses",
            "responses of chatmail-web by HTTP status (429: the [web] new_per_window ceiling)",
            ("code",),
        )
        for code in CODES:
            self.responses.declare(str(code))
        self.accounts = registry.counter(
            "chatmail_web_accounts_handed_out", "credentials handed out by POST /new"
        )

    def response(self, status: int) -> None:
        """Count a response sent; a 200 is only ever the credentials of POST /new."""
        self.responses.inc(str(status))
        if status == 200:
            self.accounts.inc()
