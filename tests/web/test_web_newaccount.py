"""What /new answers (pure): credentials that satisfy the account rules, the dclogin URL,
the redirect, the errors and the rate limit."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path

import pytest
from chatmail_services.authsocket import accounts
from chatmail_services.web.dclogin import dclogin_url
from chatmail_services.web.http import HttpError, Request
from chatmail_services.web.newaccount import (
    NewAccounts,
    account_link,
    new_account,
    settings_from_config,
)
from chatmail_services.web.ratewindow import RateWindow
from hypothesis import given
from hypothesis import strategies as st

from chatmail_services import credentials
from chatmail_services.address import local_part


def parse_dclogin(url: str) -> tuple[str, dict[str, str]]:
    """(address, parameters) of a dclogin: URL, as the client reads it."""
    scheme, _, rest = url.partition(":")
    assert scheme == "dclogin"
    addr, _, query = rest.partition("?")
    return urllib.parse.unquote(addr), dict(urllib.parse.parse_qsl(query, strict_parsing=True))


def app(config, count=1000):
    return NewAccounts(settings_from_config(config), RateWindow(count, 60))


def post(path="/new"):
    return Request("POST", path, (1, 0), {})


@pytest.mark.parametrize("lengths", [(9, 9), (5, 20), (64, 64)])
def test_credentials_satisfy_the_account_rules(make_config, lengths):
    username, password = lengths
    config = make_config(
        auth={
            "username_min_length": 1,
            "username_max_length": username,
            "password_min_length": password,
        }
    )
    settings = accounts.settings_from_config(config)
    for _ in range(50):
        answer = new_account(settings_from_config(config))
        assert set(answer) == {"email", "password"}
        local = local_part(config.chatmail.mail_domain, answer["email"])
        assert local is not None and len(local) == username
        assert set(local) <= set(credentials.LOCAL_ALPHABET) and local[0] != "-"
        assert accounts.creation_refusal(settings, local, answer["password"]) is None
        assert len(answer["password"]) == max(password, 24)


def test_self_signed_adds_a_dclogin_url(make_config):
    config = make_config(tls={"self_signed": "yes"})
    answer = new_account(settings_from_config(config))
    addr, params = parse_dclogin(answer["dclogin_url"])
    assert addr == answer["email"]
    assert params == {
        "p": answer["password"],
        "v": "1",
        "ih": "chat.example",
        "ip": "993",
        "is": "ssl",
        "sh": "chat.example",
        "sp": "465",
        "ss": "ssl",
        "ic": "3",
    }
    config = make_config(
        tls={"self_signed": "yes"},
        web={"login_host": "127.0.0.22", "login_imaps_port": 2993, "login_smtps_port": 2465},
    )
    _addr, params = parse_dclogin(new_account(settings_from_config(config))["dclogin_url"])
    assert params["ih"] == params["sh"] == "127.0.0.22"
    assert (params["ip"], params["sp"]) == ("2993", "2465")


@given(
    addr=st.emails(),
    password=st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1),
    host=st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\.[a-z]{2,5})?", fullmatch=True),
    invalid=st.booleans(),
    ports=st.tuples(st.integers(1, 65535), st.integers(1, 65535)),
)
def test_dclogin_round_trip(addr, password, host, invalid, ports):
    url = dclogin_url(
        addr, password, host, accept_invalid_cert=invalid, imap_port=ports[0], smtp_port=ports[1]
    )
    assert " " not in url and "&p=" not in url  # p comes first, nothing leaks between fields
    got_addr, params = parse_dclogin(url)
    assert got_addr == addr and params["p"] == password
    assert params["ih"] == params["sh"] == host
    assert (int(params["ip"]), int(params["sp"])) == ports
    assert ("ic" in params) == invalid


def test_post_answers_credentials_and_stores_nothing(make_config):
    config = make_config()
    response = app(config).respond(post(), 0)
    assert response.status == 200 and response.content_type == "application/json"
    answer = json.loads(response.body)
    assert answer["email"].endswith("@chat.example")
    assert not any(Path(config.chatmail.mailboxes_dir).iterdir())


def test_get_redirects_to_the_app_link(make_config):
    response = app(make_config()).respond(Request("GET", "/new", (1, 1), {}), 0)
    assert response.status == 302
    assert response.headers["Location"] == "dcaccount:https://chat.example/new"
    assert account_link("chat.example") == "DCACCOUNT:https://chat.example/new"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("PUT", "/new", 405), ("DELETE", "/new", 405), ("POST", "/", 404), ("GET", "/x", 404)],
)
def test_wrong_method_or_path(make_config, method, path, status):
    with pytest.raises(HttpError) as info:
        app(make_config()).respond(Request(method, path, (1, 1), {}), 0)
    assert info.value.status == status and info.value.reason
    if status == 405:
        assert info.value.headers["Allow"] == "GET, HEAD, POST"


def test_beyond_the_window_429_with_retry_after(make_config):
    service = app(make_config(), count=2)
    assert [service.respond(post(), t).status for t in (0, 1, 2)] == [200, 200, 429]
    refused = service.respond(post(), 10)
    assert json.loads(refused.body)["reason"]
    assert refused.headers["Retry-After"] == "50"
    assert service.respond(post(), 60).status == 200
