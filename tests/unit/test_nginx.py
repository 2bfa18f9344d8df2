"""roles/nginx without Docker: the nginx.conf and compose file it renders, and its input checks.
(Molecule's web scenario has nginx itself check the configuration with nginx -t.)"""
import re
import subprocess

import pytest
import yaml

from test_app import failed_checks, render_role_template


def conf(**inputs):
    return render_role_template("nginx", "nginx.conf.j2", **inputs)


def compose(**inputs):
    return yaml.safe_load(render_role_template("nginx", "compose.yaml.j2", **inputs))


def server(text, port):
    """The text of the server block listening on port."""
    start = text.index(f"listen {port}")
    return text[start:text.index("\n    }\n", start)]


def test_tls_redirects_everything_but_acme_challenges_and_sends_hsts():
    text = conf(nginx_https_port=8443)
    http = server(text, 8080)
    assert "return 301 https://$host:8443$request_uri;" in http
    assert "location /.well-known/acme-challenge/ {" in http and "proxy_pass" not in http
    assert 'add_header Strict-Transport-Security "max-age=63072000" always;' in server(text, "8443 ssl")
    assert "Strict-Transport-Security" not in http


def test_tls_follows_mozilla_intermediate():
    https = server(conf(), "8443 ssl")
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in https
    ciphers = re.search(r"ssl_ciphers (\S+);", https).group(1).split(":")
    assert ciphers[:6] == ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
                           "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
                           "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305"]
    assert "ssl_prefer_server_ciphers off;" in https and "ssl_session_tickets off;" in https


def test_hsts_options():
    https = server(conf(nginx_hsts_max_age=31536000, nginx_hsts_include_subdomains_enabled=True), "8443 ssl")
    assert 'Strict-Transport-Security "max-age=31536000; includeSubDomains" always;' in https


def test_without_tls_http_serves_the_app_and_no_hsts():
    text = conf(nginx_tls_enabled=False)
    assert "proxy_pass" in server(text, 8080)
    assert "ssl" not in text and "Strict-Transport-Security" not in text
    assert len(compose(nginx_tls_enabled=False)["services"]["nginx"]["ports"]) == 1


def test_one_upstream_is_resolved_per_request_by_dockers_dns():
    text = conf()
    assert "resolver 127.0.0.11" in text and "upstream app {" not in text
    assert "include /etc/nginx/deployer/upstream.conf;" in text
    assert "proxy_pass http://$app_upstream;" in text


def test_several_upstreams_are_balanced():
    text = conf(nginx_upstream_servers=["10.0.0.2:8000", "app3.internal:8000"])
    assert "include /etc/nginx/deployer/upstream.conf;" in text
    assert "proxy_pass http://app;" in text and "resolver" not in text


def set_upstream(tmp_path, servers, *args):
    """Renders roles/nginx's set-upstream for nginx_upstream_servers=servers into tmp_path and
    runs it (--no-reload, or without a running nginx) with args."""
    (tmp_path / "conf").mkdir(exist_ok=True)
    script = tmp_path / "set-upstream"
    script.write_text(render_role_template("nginx", "set-upstream.sh.j2", nginx_upstream_servers=servers,
                                           nginx_stack_name="shop", __nginx_dir=str(tmp_path)))
    script.chmod(0o755)
    # No docker on PATH: the script must not need it unless nginx runs.
    result = subprocess.run([str(script), *args], capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin"})
    upstream = tmp_path / "conf" / "upstream.conf"
    return result, upstream.read_text() if upstream.exists() else None


def test_set_upstream_writes_one_server_as_a_variable(tmp_path):
    result, text = set_upstream(tmp_path, ["web-a:8000"], "--no-reload", "web-b:8000")
    assert result.returncode == 0 and result.stdout == "changed\n", result.stderr
    assert 'map $host $app_upstream {\n    default "web-b:8000";\n}' in text


def test_set_upstream_writes_several_servers_as_an_upstream_block(tmp_path):
    servers = ["10.0.0.2:8001", "10.0.0.3:8000", "[fd00::4]:8000"]
    result, text = set_upstream(tmp_path, servers, "--no-reload", *servers)
    assert result.returncode == 0, result.stderr
    assert re.search(r"upstream app \{\s+server 10\.0\.0\.2:8001 max_fails=3 fail_timeout=10s;\s+"
                     r"server 10\.0\.0\.3:8000 [^;]*;\s+server \[fd00::4\]:8000 [^;]*;\s+keepalive 16;\s+\}", text)


def test_set_upstream_reports_an_unchanged_list_and_keeps_the_previous_one(tmp_path):
    set_upstream(tmp_path, ["a:1", "b:2"], "a:1", "b:2")
    first = (tmp_path / "conf" / "upstream.conf").read_text()
    result, text = set_upstream(tmp_path, ["a:1", "b:2"], "a:1", "b:2")
    assert (result.returncode, result.stdout, text) == (0, "unchanged\n", first)
    result, _ = set_upstream(tmp_path, ["a:1", "b:2"], "a:1", "b:3")
    assert result.stdout == "changed\n"
    assert (tmp_path / "conf" / "upstream.conf.previous").read_text() == first


@pytest.mark.parametrize("args", [[], ["web"], ["web:"], ["a:1; include /etc/passwd"], ["--no-reload"]])
def test_set_upstream_refuses_what_is_not_host_port(tmp_path, args):
    result, text = set_upstream(tmp_path, ["a:1", "b:2"], *args)
    assert result.returncode == 2 and text is None, (result.stdout, result.stderr)


def test_proxy_headers_websockets_body_size_and_rate_limit():
    text = conf(nginx_client_max_body_size="25m", nginx_rate_limit="5r/s", nginx_rate_limit_burst=7)
    for header in ("Host $host", "X-Forwarded-For $proxy_add_x_forwarded_for", "X-Forwarded-Proto $scheme",
                   "X-Real-IP $remote_addr", "Upgrade $http_upgrade", "Connection $connection_upgrade"):
        assert f"proxy_set_header {header};" in text
    assert "map $http_upgrade $connection_upgrade" in text and "proxy_http_version 1.1;" in text
    assert "client_max_body_size 25m;" in text
    assert "zone=per_client:10m rate=5r/s;" in text and "burst=7 nodelay;" in text


def test_security_headers_replace_the_apps_own():
    text = conf(nginx_security_headers={"X-Frame-Options": "DENY", "Content-Security-Policy": "default-src 'self'"})
    https = server(text, "8443 ssl")
    assert 'add_header X-Frame-Options "DENY" always;' in https
    assert "add_header Content-Security-Policy \"default-src 'self'\" always;" in https
    for name in ("X-Frame-Options", "Content-Security-Policy", "Strict-Transport-Security"):
        assert f"proxy_hide_header {name};" in https


def test_static_locations_are_aliases_of_read_only_mounts():
    inputs = {"nginx_static_locations": [
        {"url": "/static/", "source": "/opt/shop/app/static", "expires": "7d"},
        {"url": "/media/", "source": "shop-app-media"}]}
    text = conf(**inputs)
    assert "location /static/ {\n            alias /srv/static/0/;\n            expires 7d;" in text
    assert "location /media/ {\n            alias /srv/static/1/;\n        }" in text
    rendered = compose(**inputs)
    assert rendered["services"]["nginx"]["volumes"][-2:] == [
        "/opt/shop/app/static:/srv/static/0:ro", "shop-app-media:/srv/static/1:ro"]
    assert rendered["volumes"] == {"shop-app-media": {"external": True}}


def test_the_container_runs_unprivileged_on_a_read_only_root():
    nginx = compose(nginx_listen_address="192.0.2.1", nginx_http_port=8080, nginx_https_port=8443)["services"]["nginx"]
    assert nginx["user"] == "101:101" and nginx["cap_drop"] == ["ALL"] and "cap_add" not in nginx
    assert nginx["read_only"] is True and nginx["tmpfs"] == ["/tmp"]
    assert nginx["security_opt"] == ["no-new-privileges:true"]
    assert nginx["ports"] == ["192.0.2.1:8080:8080", "192.0.2.1:8443:8443"]
    assert "/opt/stack/nginx/conf:/etc/nginx/deployer:ro" in nginx["volumes"]
    assert "/etc/stack/tls:/etc/nginx/tls:ro" in nginx["volumes"]
    assert nginx["healthcheck"]["start_interval"] == "1s"
    assert compose(nginx_listen_address="::")["services"]["nginx"]["ports"][0] == "[::]:80:8080"


def test_the_defaults_pass_validation():
    assert failed_checks("nginx") == []


@pytest.mark.parametrize("inputs, check", [
    ({"nginx_https_port": 80}, "Check the stack name and the ports"),
    ({"nginx_upstream_servers": ["web"]}, "Check the upstream servers"),
    ({"nginx_upstream_servers": []}, "Check the upstream servers"),
    ({"nginx_upstream_servers": ["web:8000", "10.0.0.3:8000"]},
     "Check that several upstream servers are host addresses, not docker service names"),
    ({"nginx_hsts_max_age": 86400}, "Check sizes, rates and HSTS"),
    ({"nginx_rate_limit": "10/s"}, "Check sizes, rates and HSTS"),
    ({"nginx_client_max_body_size": "10 MB"}, "Check sizes, rates and HSTS"),
    ({"nginx_security_headers": {"X-Bad": 'say "hi"'}}, "Check the security headers"),
    ({"nginx_security_headers": {"Strict-Transport-Security": "max-age=1"}}, "Check the security headers"),
    ({"nginx_static_locations": [{"url": "/static", "source": "/srv"}]}, "Check the static file locations"),
    ({"nginx_static_locations": [{"url": "/static/", "source": "a:b"}]}, "Check the static file locations"),
    ({"nginx_static_locations": [{"url": "/static/", "source": "/a b"}]}, "Check the static file locations"),
    ({"nginx_acme_webroot": "var/lib/acme"}, "Check the ACME challenge directory"),
])
def test_bad_inputs_fail_the_right_check(inputs, check):
    assert failed_checks("nginx", **inputs) == [check]


def test_several_host_addresses_pass():
    assert failed_checks("nginx", nginx_upstream_servers=["10.0.0.2:8000", "[fd00::3]:8000", "app1.lan:8000"]) == []


def test_the_acme_challenge_is_served_from_the_webroot_only_when_given():
    http = server(conf(), 8080)
    assert "location /.well-known/acme-challenge/ {\n            return 404;" in http
    assert "/srv/acme" not in str(compose()["services"]["nginx"]["volumes"])
    http = server(conf(nginx_acme_webroot="/var/lib/shop/acme-challenge"), 8080)
    challenge = http[http.index("location /.well-known/acme-challenge/"):]
    assert "root /srv/acme;" in challenge and "try_files $uri =404;" in challenge
    assert challenge.index("try_files") < challenge.index("location / {")
    volumes = compose(nginx_acme_webroot="/var/lib/shop/acme-challenge")["services"]["nginx"]["volumes"]
    assert "/var/lib/shop/acme-challenge:/srv/acme:ro" in volumes


def test_the_reload_script_signals_the_master_and_records_the_certificate():
    script = render_role_template("nginx", "reload.sh.j2", nginx_stack_name="shop")
    assert "docker compose --project-directory /opt/shop/nginx -p shop-nginx kill -s HUP nginx" in script
    assert "sha256sum /etc/shop/tls/fullchain.pem" in script
    assert "> /opt/shop/nginx/certificate.sha256" in script
    assert "sha256sum" not in render_role_template("nginx", "reload.sh.j2", nginx_tls_enabled=False)
