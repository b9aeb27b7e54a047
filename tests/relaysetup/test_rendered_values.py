"""Values of chatmail.ini in the files chatmail-setup renders: whatever the loader accepts
leaves each file's lines and structure as they are (hypothesis); a bad value stops the real
`chatmail-setup` with one line naming the option, and nothing is written."""

from __future__ import annotations

import html.parser
import subprocess

import pytest
from chatmail_services.relaysetup.parts import NGINX_DEFAULT_SITE, Context, build_parts
from harness import MAIL_USER, VENV_BIN
from hypothesis import event, given
from hypothesis import strategies as st

from chatmail_services.config import EX_CONFIG, ConfigError, parse_config
from chatmail_services.mailconfig import production_values, tls_paths

BASE = {
    "chatmail": {"mail_domain": "chat.example"},
    "tls": {"self_signed": "yes"},
    "metadata": {"turn_host": "turn.chat.example"},
}
# what means something in one of the rendered formats (Postfix, Dovecot, nginx, coturn, Lua),
# counted per line; an accepted value holds none of it. (Not the backslash: the domain's
# dots are escaped in Postfix's regexp table.)
SYNTAX = "#{}\"';$%<>=:,()[]`|*?"
DANGEROUS = [*SYNTAX, "\\", " ", "\n", "\t", "\r", "\0", "\x7f", "\u00e9", "\u2028"]


def pieces(safe: str) -> st.SearchStrategy[str]:
    """Text of a kind's own characters, or of those mixed with ones that mean something."""
    return st.one_of(
        st.text(st.sampled_from(safe), min_size=1, max_size=16),
        st.text(st.sampled_from([*safe, *DANGEROUS]), min_size=1, max_size=16),
    )


PATH, HOST, LOCAL, NUMBER = "abz019/._-+@", "abz019.-", "abz019._+&-", "0123456789kKM"
# every option whose value is rendered into a file, and values of its kind with bad bits
RENDERED = {
    ("chatmail", "mailboxes_dir"): pieces(PATH).map(lambda text: f"/{text}"),
    ("chatmail", "mail_domain"): pieces(HOST).map(lambda text: f"a{text}.example"),
    ("tls", "cert_file"): pieces(PATH).map(lambda text: f"/etc/{text}"),
    ("tls", "key_file"): pieces(PATH).map(lambda text: f"/{text}/key.pem"),
    ("web", "root"): pieces(PATH).map(lambda text: f"/srv/{text}"),
    ("web", "socket"): pieces(PATH).map(lambda text: f"/run/{text}"),
    ("web", "operator_contact"): pieces(LOCAL).map(lambda text: f"o{text}@chat.example"),
    ("metadata", "turn_port"): pieces(NUMBER),
    ("chatmail", "max_message_size"): pieces(NUMBER),
    ("chatmail", "max_recipients"): pieces(NUMBER),
    ("federation", "socket"): pieces(PATH).map(lambda text: f"/run/{text}"),
    ("federation", "smtpd_port"): pieces(NUMBER),
    ("web", "new_client_per_minute"): pieces(NUMBER),
    ("web", "new_client_burst"): pieces(NUMBER),
    ("web", "new_client_zone"): pieces(NUMBER),
}


def ini_text(sections: dict[str, dict[str, str]]) -> str:
    """INI text; a newline in a value is written as configparser's continuation line."""
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {value}".replace("\n", "\n  ") for key, value in values.items())
    return "\n".join(lines) + "\n"


def render_all(sections: dict[str, dict[str, str]], dovecot: str) -> list[tuple[str, str]]:
    """(part, text) of every file chatmail-setup would write, in order, through the
    production parts on a system where the certificate, keys and secret exist."""
    config = parse_config(ini_text(sections), "chatmail.ini")
    cert, key = tls_paths(config)
    ctx = Context(
        read_text=lambda path: "s3cret\n" if path == config.metadata.turn_secret_file else None,
        exists=lambda path: path != NGINX_DEFAULT_SITE,
        mail_user=MAIL_USER,
        values=production_values(config, cert, key, MAIL_USER),
        dovecot_version=dovecot,
        system=False,
    )
    return [
        (part.name, desired.content.decode())
        for part in build_parts(config, ctx)
        for desired in part.files
    ]


class _Tags(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, tuple[str, ...]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, tuple(name for name, _value in attrs)))

    def handle_endtag(self, tag):
        self.tags.append((f"/{tag}", ()))


def skeleton(text: str) -> object:
    """What a value must not change: the lines, and in each line its words and syntax
    characters; for HTML and XML the elements and their attribute names."""
    if text.lstrip().startswith(("<!DOCTYPE", "<?xml", "<html")):
        parser = _Tags()
        parser.feed(text)
        return parser.tags
    return [
        (len(line.split()), tuple(line.count(char) for char in SYNTAX)) for line in text.split("\n")
    ]


@given(
    st.sampled_from(sorted(RENDERED)).flatmap(
        lambda option: st.tuples(st.just(option), RENDERED[option])
    ),
    st.sampled_from(["2.3.19.1", "2.4.1"]),
)
def test_an_accepted_value_keeps_every_rendered_file_s_structure(option_value, dovecot):
    (section, key), value = option_value
    sections = {name: dict(values) for name, values in BASE.items()}
    sections.setdefault(section, {})[key] = value
    try:
        files = render_all(sections, dovecot)
    except ConfigError as exc:
        event("refused")
        message = str(exc)
        assert message.startswith(f"chatmail.ini: [{section}] {key}: "), message
        assert "\n" not in message and "\r" not in message
        return
    event("accepted")
    reference = render_all(BASE, dovecot)
    assert [part for part, _text in files] == [part for part, _text in reference]
    for (part, text), (_part, ref) in zip(files, reference, strict=True):
        assert text.count("\n") == ref.count("\n"), (part, value)
        assert skeleton(text) == skeleton(ref), (part, value)


SNAKEOIL = ("/etc/ssl/certs/ssl-cert-snakeoil.pem", "/etc/ssl/private/ssl-cert-snakeoil.key")


@pytest.mark.parametrize(
    ("section", "key", "value", "needle"),
    [
        ("tls", "cert_file", f"{SNAKEOIL[0]}\nsmtpd_relay_restrictions = permit", "line break"),
        ("web", "root", "/var/lib/chatmail/www\nlocation /x { return 200; }", "line break"),
        ("web", "operator_contact", "ops#{x}@chat.example", "'#'"),
        ("metadata", "notify_url", "http://push.example/notify", "https://"),
    ],
)
def test_a_bad_value_stops_chatmail_setup_with_one_line_and_writes_nothing(
    tmp_path, section, key, value, needle
):
    root = tmp_path / "root"
    (root / "etc/postfix").mkdir(parents=True)
    (root / "etc/postfix/main.cf").write_text("myhostname = debian.example\n")
    before = sorted(root.rglob("*"))
    ini = tmp_path / "chatmail.ini"
    sections = {name: dict(values) for name, values in BASE.items()}
    sections.setdefault(section, {})[key] = value
    ini.write_text(ini_text(sections))
    for mode in ("--root", "--out"):
        result = subprocess.run(
            [
                str(VENV_BIN / "chatmail-setup"),
                *("--config", str(ini), "--mail-user", MAIL_USER),
                *("--dovecot-version", "2.3.19.1", mode, str(root)),
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=60,
        )
        assert result.returncode == EX_CONFIG, result.stderr
        assert result.stdout == ""
        (line,) = result.stderr.splitlines()
        assert f"{ini}: [{section}] {key}: " in line and needle in line, line
        assert sorted(root.rglob("*")) == before
        assert (root / "etc/postfix/main.cf").read_text() == "myhostname = debian.example\n"


def test_real_postconf_and_doveconf_read_an_unusual_accepted_path_as_it_is(tmp_path):
    """The real parsers agree: a path of every allowed character is one value."""
    odd = "/srv/a+b@c/x-y_z.1"
    sections = {
        "chatmail": {"mail_domain": "chat.example", "mailboxes_dir": odd},
        "tls": {"cert_file": f"{odd}/cert.pem", "key_file": f"{odd}/key.pem"},
    }
    ini = tmp_path / "chatmail.ini"
    ini.write_text(ini_text(sections))
    out = tmp_path / "out"
    for name in ("cert.pem", "key.pem"):
        (out / odd.lstrip("/")).mkdir(parents=True, exist_ok=True)
        (out / odd.lstrip("/") / name).write_text("placeholder\n")
    subprocess.run(
        [
            str(VENV_BIN / "chatmail-setup"),
            *("--config", str(ini), "--mail-user", MAIL_USER),
            *("--dovecot-version", "2.3.19.1", "--out", str(out)),
        ],
        check=True,
        capture_output=True,
        cwd=tmp_path,
        timeout=60,
    )
    postconf = subprocess.run(
        ["postconf", "-c", str(out / "etc/postfix"), "-h", "smtpd_tls_cert_file"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert postconf.stdout == f"{odd}/cert.pem\n"
    conf = out / "etc/dovecot/dovecot.conf"
    # doveconf reads `ssl_cert = <file` at parse time: point it at the placeholder
    text = conf.read_text().replace(f"<{odd}/", f"<{out}{odd}/")
    conf.write_text(text)
    doveconf = subprocess.run(
        ["doveconf", "-c", str(conf), "-h", "mail_location"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert doveconf.stdout == f"maildir:{odd}/%u\n"
