"""chatmail-mxdeliv's metrics: requests by outcome, told from the answer sent.

`outcome`: delivered (200), temporary (400 with a 4xx SMTP reply: the sender retries),
refused (400 with a 5xx reply: Postfix or the checks refused it), too_large (413),
method_not_allowed (405), other (anything else).
"""

from __future__ import annotations

from chatmail_services.web.http import Response

from chatmail_services.metrics import Registry

OUTCOMES = ("delivered", "temporary", "refused", "too_large", "method_not_allowed", "other")
_BY_STATUS = {200: "delivered", 413: "too_large", 405: "method_not_allowed"}


def outcome(response: Response) -> str:
    """The outcome label of an answer (module docstring)."""
    if response.status == 400:
        first = response.body[:1]
        return {b"4": "temporary", b"5": "refused"}.get(first, "other")
    return _BY_STATUS.get(response.status, "other")


class MxdelivMetrics:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.requests = registry.counter(
            "chatmail_mxdeliv_requests",
            "requests to POST /mxdeliv answered, by outcome (delivered, temporary, refused, "
            "too_large, method_not_allowed, other)",
            ("outcome",),
        )
        for name in OUTCOMES:
            self.requests.declare(name)

    def response(self, response: Response) -> None:
        self.requests.inc(outcome(response))
