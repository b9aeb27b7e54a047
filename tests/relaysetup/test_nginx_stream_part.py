"""chatmail-setup's nginx part: port 443 is the stream (IMAP and SMTP by ALPN), installed where
Debian's nginx reads it in its main context; the HTTPS server only behind it, on loopback; and
a system without nginx's stream module gets one line saying what to install."""

from __future__ import annotations

import pytest
from chatmail_services.relaysetup.parts import (
    NGINX_CONF,
    NGINX_DEFAULT_SITE,
    Context,
    SetupError,
    nginx_part,
)
from chatmail_services.web.nginxstream import PRODUCTION_FILE, STREAM_MODULE
from harness import MAIL_USER

from chatmail_services.config import parse_config


def context(exists) -> Context:
    return Context(
        read_text=lambda path: None,
        exists=exists,
        mail_user=MAIL_USER,
        values={},
        dovecot_version=None,
        system=True,
    )


def files(part) -> dict[str, str]:
    return {desired.path: desired.content.decode() for desired in part.files}


CONFIG = "[chatmail]\nmail_domain = chat.example\n[tls]\nself_signed = yes\n"


def test_port_443_is_the_stream_and_https_listens_behind_it():
    part = nginx_part(parse_config(CONFIG), context(lambda path: path != NGINX_DEFAULT_SITE))
    written = files(part)
    stream, http = written[PRODUCTION_FILE], written[NGINX_CONF]
    assert PRODUCTION_FILE.startswith("/etc/nginx/modules-enabled/")  # nginx.conf's main context
    assert "listen 0.0.0.0:443;" in stream and "listen [::]:443;" in stream
    assert "ssl_preread on;" in stream and "proxy_protocol on;" in stream
    assert "listen 127.0.0.1:8443 ssl proxy_protocol;" in http
    assert ":443" not in http  # only the stream has the public port
    assert "real_ip_header proxy_protocol;" in http and "set_real_ip_from 127.0.0.1;" in http


def test_without_the_stream_module_setup_says_what_to_install():
    def exists(path: str) -> bool:
        return path not in (NGINX_DEFAULT_SITE, STREAM_MODULE)

    with pytest.raises(SetupError, match="apt-get install libnginx-mod-stream"):
        nginx_part(parse_config(CONFIG), context(exists))
