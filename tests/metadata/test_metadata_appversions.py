"""`/shared/vendor/deltachat/appversions`: the list shipped with the package, the core's rules
for reading it (pure, with hypothesis), where the value comes from, and the real Delta Chat
core reading it from a local relay through Dovecot."""

from __future__ import annotations

import json
import logging
import shutil
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from chatmail_services.metadata import appversions
from harness import stack_dir
from harness.deltachat import deltachat_core
from harness.relay import LocalRelay
from hypothesis import given
from hypothesis import strategies as st

DOMAIN = "chat.localhost"
# where Delta Chat publishes its apps (get.delta.chat links to these)
OFFICIAL = {
    "github.com": "/deltachat/",
    "download.delta.chat": "/",
    "get.delta.chat": "/",
    "play.google.com": "/store/apps/details",
    "f-droid.org": "/",
    "apps.apple.com": "/",
}
SOURCE_KEYS = {"sourceId", "versionInteger", "versionString", "downloadUrl"}


def shipped() -> dict:
    return json.loads(appversions.SHIPPED.read_bytes())


def test_the_shipped_list_is_complete_and_official():
    """Stricter than the core: every key present and non-empty (a missing one would silently
    be a default), ids unique (the core takes the first match), official https URLs only,
    the version string in the file name the URL names."""
    value = shipped()
    assert appversions.check(value) is None
    assert set(value) == {"clients"} and value["clients"]
    client_ids = [client["clientId"] for client in value["clients"]]
    assert len(set(client_ids)) == len(client_ids) and all(client_ids)
    for client in value["clients"]:
        assert set(client) == {"clientId", "sources"} and client["sources"]
        source_ids = [source["sourceId"] for source in client["sources"]]
        assert len(set(source_ids)) == len(source_ids) and all(source_ids)
        for source in client["sources"]:
            assert set(source) == SOURCE_KEYS, source
            number = source["versionInteger"]
            assert type(number) is int and 0 < number <= appversions.U32_MAX
            assert source["versionString"]
            url = urllib.parse.urlsplit(source["downloadUrl"])
            assert url.scheme == "https" and url.hostname in OFFICIAL, url
            assert url.path.startswith(OFFICIAL[url.hostname]), url
            if url.path.endswith(".apk"):
                assert source["versionString"] in url.path.rsplit("/", 1)[1]
    # the Android app's own updater asks for this pair (clientId, sourceId)
    (android,) = [c for c in value["clients"] if c["clientId"] == "deltachat"]
    assert "gplay" in [s["sourceId"] for s in android["sources"]]


def test_the_shipped_list_is_installed_as_package_data():
    setup = (Path(__file__).parents[2] / "setup.cfg").read_text()
    assert "chatmail_services.metadata = appversions.json" in setup
    assert appversions.SHIPPED.name == "appversions.json" and appversions.SHIPPED.is_file()


# -- the core's rules (appversions.rs: serde, camelCase, every key optional) --

u32 = st.integers(0, appversions.U32_MAX)
sources = st.fixed_dictionaries(
    {},
    optional={
        "sourceId": st.text(),
        "versionInteger": u32,
        "versionString": st.text(),
        "downloadUrl": st.text(),
        "extra": st.none() | st.integers(),  # unknown keys are ignored
    },
)
clients = st.fixed_dictionaries(
    {}, optional={"clientId": st.text(), "sources": st.lists(sources, max_size=3)}
)
documents = st.fixed_dictionaries(
    {}, optional={"clients": st.lists(clients, max_size=3), "foo": st.text()}
)
json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)
# a value of each typed key that the core's types refuse
WRONG = {
    "clients": [st.just(None), st.text(), st.dictionaries(st.text(), st.integers())],
    "clientId": [st.just(None), st.integers(), st.lists(st.text())],
    "sources": [st.just(None), st.text(), st.integers()],
    "sourceId": [st.just(None), st.integers(), st.booleans()],
    "versionString": [st.just(None), st.integers(), st.floats()],
    "downloadUrl": [st.just(None), st.lists(st.text())],
    "versionInteger": [
        st.just(None),
        st.booleans(),
        st.text(),
        st.floats(),
        st.integers(max_value=-1),
        st.integers(min_value=appversions.U32_MAX + 1),
    ],
}


@given(documents)
def test_what_the_core_takes_is_served_on_one_line(value):
    assert appversions.check(value) is None
    line = appversions.parse(json.dumps(value, indent=2).encode())
    assert "\n" not in line and json.loads(line) == value


@given(json_values)
def test_check_is_total(value):
    assert appversions.check(value) is None or isinstance(appversions.check(value), str)


@given(st.binary(max_size=200))
def test_parse_raises_only_value_error(data):
    try:
        line = appversions.parse(data)
    except ValueError:
        return
    assert "\n" not in line and appversions.check(json.loads(line)) is None


@given(st.data())
def test_one_value_of_a_wrong_type_is_refused_and_named(data):
    key = data.draw(st.sampled_from(sorted(WRONG)))
    wrong = data.draw(st.one_of(WRONG[key]))
    source = {"sourceId": "s", "versionInteger": 1, "versionString": "1", "downloadUrl": "u"}
    client = {"clientId": "c", "sources": [source]}
    value = {"clients": [client]}
    if key == "clients":
        value["clients"] = wrong
    elif key in client:
        client[key] = wrong
    else:
        source[key] = wrong
    problem = appversions.check(value)
    assert problem is not None and key in problem


def test_not_an_object_is_refused():
    for value in ([], "x", 1, None):
        assert appversions.check(value) == "not a JSON object"


def test_what_json_allows_but_the_core_does_not():
    """758.0 is a float (u32 refuses it); NaN is no JSON; a key twice is refused."""
    for text in [
        '{"clients": [{"sources": [{"versionInteger": 758.0}]}]}',
        '{"clients": [{"sources": [{"versionInteger": NaN}]}]}',
        '{"clients": [], "clients": []}',
    ]:
        with pytest.raises(ValueError):
            appversions.parse(text.encode())


def test_where_the_value_comes_from(tmp_path, caplog):
    own = tmp_path / "own.json"
    assert appversions.serve("") is None  # empty setting: none
    line = appversions.serve(str(tmp_path / "missing.json"))  # missing: the shipped list
    assert line is not None and json.loads(line) == shipped()
    own.write_text('{"clients": [{"clientId": "x"}]}')
    assert appversions.serve(str(own)) == '{"clients":[{"clientId":"x"}]}'
    caplog.set_level(logging.WARNING, "chatmail.metadata")
    for text, why in [
        ("not json", "not valid JSON"),
        ('{"clients": [{"sources": [{"versionInteger": "758"}]}]}', "versionInteger"),
        (json.dumps({"x": "y" * appversions.MAX_BYTES}), "larger than"),
    ]:
        own.write_text(text)
        assert appversions.serve(str(own)) is None
        assert why in caplog.records[-1].getMessage()


# -- the real core, through Dovecot --


@pytest.fixture(scope="module")
def relay() -> Iterator[LocalRelay]:
    root = stack_dir("chatmail-appversions-")
    sections = {"metadata": {"app_versions_file": str(root / "none-here.json")}}
    relay = LocalRelay(root, domain=DOMAIN, milter=False, config_sections=sections)
    try:
        with relay:
            yield relay
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.e2e
def test_the_delta_chat_core_reads_the_shipped_list(relay, tmp_path):
    """Delta Chat core (deltachat-rpc-server) logs in, reads the server keys over IMAP
    METADATA and answers `get_app_version` with the shipped entry: it parsed it."""
    credentials = relay.new_credentials()
    with deltachat_core(tmp_path / "accounts") as dc:
        account = dc.add_account()
        account.add_transport_from_qr(
            relay.dclogin_uri(credentials["email"], credentials["password"])
        )
        account.start_io()
        (client,) = [c for c in shipped()["clients"] if c["clientId"] == "deltachat"]
        for source in client["sources"]:
            deadline = time.monotonic() + 60
            found = dc.rpc.get_app_version("deltachat", source["sourceId"])
            while found is None and time.monotonic() < deadline:
                time.sleep(0.2)
                found = dc.rpc.get_app_version("deltachat", source["sourceId"])
            assert found is not None, source
            for key in ("versionInteger", "versionString", "downloadUrl"):
                assert found[key] == source[key], key
        assert dc.rpc.get_app_version("deltachat", "no-such-source") is None
        account.stop_io()
