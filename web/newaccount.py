"""What `/new` answers: credentials for a new account (POST), the app link (GET), errors.

`POST /new` answers `{"email": ..., "password": ...}` (and `dclogin_url` when the relay's
certificate is self-signed); nothing is stored, the first login creates the account. `GET
/new` redirects to `dcaccount:https://<domain>/new`, so a browser hands the link to the app.
Every error is JSON `{"reason": ...}`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from chatmail_services import credentials
from chatmail_services.config import Config

from .dclogin import dclogin_url
from .http import HttpError, Request, Response, error_response, json_response
from .ratewindow import RateWindow

NEW_PATH = "/new"
ALLOWED = "GET, HEAD, POST"

log = logging.getLogger("chatmail.web")


@dataclass(frozen=True)
class Settings:
    """What the answers depend on, from the config."""

    mail_domain: str
    username_length: int
    password_min_length: int
    self_signed: bool
    login_host: str
    login_imaps_port: int
    login_smtps_port: int


def settings_from_config(config: Config) -> Settings:
    return Settings(
        mail_domain=config.chatmail.mail_domain,
        username_length=config.auth.username_max_length,
        password_min_length=config.auth.password_min_length,
        self_signed=config.tls.self_signed,
        login_host=config.web.login_host or config.chatmail.mail_domain,
        login_imaps_port=config.web.login_imaps_port,
        login_smtps_port=config.web.login_smtps_port,
    )


def account_link(mail_domain: str) -> str:
    """What the QR code and the home page's link carry."""
    return f"DCACCOUNT:https://{mail_domain}{NEW_PATH}"


def new_account(settings: Settings) -> dict[str, str]:
    """The JSON object of a successful `POST /new`."""
    answer = credentials.new_credentials(
        settings.mail_domain, settings.username_length, settings.password_min_length
    )
    if settings.self_signed:
        answer["dclogin_url"] = dclogin_url(
            answer["email"],
            answer["password"],
            settings.login_host,
            accept_invalid_cert=True,
            imap_port=settings.login_imaps_port,
            smtp_port=settings.login_smtps_port,
        )
    return answer


class NewAccounts:
    """Answers requests; holds the one rate window."""

    def __init__(self, settings: Settings, window: RateWindow) -> None:
        self.settings = settings
        self.window = window

    def respond(self, request: Request, now: float) -> Response:
        """The response to a complete request (its body already read and ignored)."""
        if request.path != NEW_PATH:
            raise HttpError(404, "not found")
        if request.method in ("GET", "HEAD"):
            link = account_link(self.settings.mail_domain).replace("DCACCOUNT:", "dcaccount:", 1)
            return Response(302, b"", content_type="text/plain", headers={"Location": link})
        if request.method != "POST":
            raise HttpError(405, "use POST to get an account", {"Allow": ALLOWED})
        if not self.window.allow(now):
            retry = self.window.retry_after(now)
            if self.window.refused == 1:  # once per window, not once per request
                log.warning("account creation rate limit reached; refusing for %d s", retry)
            return error_response(
                HttpError(
                    429,
                    "too many new accounts right now, try again later",
                    {"Retry-After": str(retry)},
                )
            )
        answer = new_account(self.settings)
        log.debug("handed out credentials for %s", answer["email"])
        return json_response(200, answer)
