"""The nginx template's production values, and nginx's own check of the result."""

from __future__ import annotations

import re
import subprocess

from chatmail_services.web.nginxconf import TEMPLATE, nginx_values, render_nginx
from chatmail_services.web.nginxstream import StreamPorts, render_stream
from harness.nginx import main_conf
from harness.tls import self_signed_cert

from chatmail_services.templating import PLACEHOLDER, template_text


def test_production_values_follow_the_config(make_config):
    config = make_config(web={"root": "/srv/www", "socket": "/run/x/web.sock"})
    values = nginx_values(config, tls_cert="/c.pem", tls_key="/k.pem")
    assert values["web_root"] == "/srv/www" and values["web_socket"] == "/run/x/web.sock"
    # behind the stream on 443 (test_web_stream.py), which hands HTTPS on with the PROXY protocol
    assert values["listen_https"] == "    listen 127.0.0.1:8443 ssl proxy_protocol;"
    assert values["stream_source"] == "127.0.0.1"
    assert values["server_names"].split() == [
        "chat.example",
        "www.chat.example",
        "mta-sts.chat.example",
        "autoconfig.chat.example",
    ]
    assert set(PLACEHOLDER.findall(template_text(TEMPLATE))) == set(values)


def test_every_server_keeps_no_access_log_and_logs_no_client(make_config):
    text = render_nginx(make_config(), tls_cert="/c.pem", tls_key="/k.pem")
    servers = text.count("server {")
    assert servers == 3  # the port-80 catch-all, port 80, port 443
    assert text.count("access_log off;") == servers
    assert len(re.findall(r"^\s*error_log \S+ emerg;", text, re.M)) == servers
    # the client address only as the key of /new's limit, in memory; passed on nowhere
    assert "X-Forwarded-For" not in text and "log_format" not in text
    assert re.findall(r"\S*remote_addr\S*", text) == ["$binary_remote_addr;"]
    assert "limit_req_log_level info;" in text  # below emerg: refusals are never logged


def test_new_is_limited_per_client_as_configured(make_config):
    config = make_config(
        web={"new_client_per_minute": 7, "new_client_burst": 3, "new_client_zone": "64K"}
    )
    text = render_nginx(config, tls_cert="/c.pem", tls_key="/k.pem")
    assert "zone=chatmail_new:65536 rate=7r/m;" in text
    new = text[text.index("location = /new {") :]
    assert new[: new.index("}")].count("limit_req zone=chatmail_new burst=3 nodelay;") == 1


def test_port_80_redirects_to_the_configured_domain_only(make_config):
    text = render_nginx(make_config(), tls_cert="/c.pem", tls_key="/k.pem")
    assert "$host" not in text and "$http_host" not in text
    assert "return 301 https://chat.example$request_uri;" in text
    assert text.count("default_server") == 2  # IPv4 and IPv6, port 80
    assert text.count("absolute_redirect off;") == 2


def test_nginx_accepts_the_production_configuration(make_config, tmp_path):
    cert, key = self_signed_cert(tmp_path, "chat.example")
    (tmp_path / "temp").mkdir()
    conf = render_nginx(
        make_config(),
        tls_cert=str(cert),
        tls_key=str(key),
        error_log=str(tmp_path / "server-error.log"),
    )
    (tmp_path / "chatmail.conf").write_text(conf)
    stream = render_stream(StreamPorts(), error_log=str(tmp_path / "server-error.log"))
    (tmp_path / "chatmail-stream.conf").write_text(stream)
    main = tmp_path / "nginx.conf"
    main.write_text(main_conf(tmp_path))
    result = subprocess.run(
        ["nginx", "-t", "-p", str(tmp_path), "-c", str(main)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr
    broken = tmp_path / "chatmail.conf"
    broken.write_text(conf.replace("access_log off;", "access_log;", 1))
    result = subprocess.run(
        ["nginx", "-t", "-p", str(tmp_path), "-c", str(main)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0  # the check can fail
