"""What a user of the web path notices: HTTPS through nginx to the app, tasks run by the
workers, beat ticking, secrets kept private, locked-down containers, and an nginx reload."""
import json
import re
import time
import urllib.parse
from pathlib import Path

import pytest
import yaml

INPUTS = yaml.safe_load((Path(__file__).parents[1] / "vars" / "inputs.yml").read_text())
PROJECTS = ("shop-app", "shop-nginx", "shop-extra")


def logs(host):
    """The recent logs of the app and nginx, for failure messages."""
    return "\n".join(
        host.run(f"docker compose -p {project} logs --no-color --tail 40").stdout
        for project in PROJECTS)


def request(host, url, options=""):
    """(status, headers, body) of one request made with curl on the test host; options is
    shell text for curl."""
    out = host.run(f"curl -sk --max-time 10 -i {options} '{url}'")
    assert out.rc == 0, f"curl {url} failed: {out.stderr}\n{logs(host)}"
    head, _, body = out.stdout.partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def https(host, path, options=""):
    return request(host, f"https://localhost{path}", options)


def containers(host, project):
    ids = host.check_output(f"docker ps -q --filter label=com.docker.compose.project={project}")
    return json.loads(host.check_output(f"docker inspect {' '.join(ids.split())}")) if ids else []


def test_health_over_https_carries_the_security_headers(host):
    status, headers, body = https(host, "/health")
    assert status == 200, f"{status} {body}\n{logs(host)}"
    assert json.loads(body)["release"] == "web-test"
    assert headers["x-frame-options"] == "SAMEORIGIN"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "strict-origin-when-cross-origin"
    hsts = int(re.match(r"max-age=(\d+)", headers["strict-transport-security"]).group(1))
    assert hsts >= 15768000


def test_the_app_reaches_postgres_and_redis_with_the_encoded_passwords(host):
    status, _, body = https(host, "/ready")
    assert status == 200, f"{status} {body}\n{logs(host)}"


def test_http_redirects_to_https(host):
    status, headers, _ = request(host, "http://localhost/health?x=1")
    assert status == 301
    assert headers["location"] == "https://localhost/health?x=1"


def test_only_tls_1_2_and_1_3_are_offered(host):
    modern = host.run("openssl s_client -connect localhost:443 -tls1_2 </dev/null")
    assert modern.rc == 0 and "TLSv1.2" in modern.stdout, modern.stdout + modern.stderr
    # SECLEVEL=0 lets the client offer TLS 1.1, so only the server can refuse it.
    old = host.run("openssl s_client -connect localhost:443 -tls1_1 -cipher DEFAULT@SECLEVEL=0 </dev/null")
    assert old.rc != 0, old.stdout


def test_nginx_serves_the_certificate_of_the_domains_and_its_key_is_private(host):
    # The side effect added shop.test: nginx serves the new certificate without a restart
    # (see test_a_changed_nginx_setting_is_reloaded_not_restarted).
    names = host.check_output(
        "openssl s_client -connect localhost:443 -servername localhost </dev/null 2>/dev/null"
        " | openssl x509 -noout -ext subjectAltName")
    assert all(f"DNS:{name}" in names for name in ("localhost", "web", "shop.test")), names
    key = host.file("/etc/shop/tls/privkey.pem")
    assert key.mode == 0o600 and key.uid == 101


def test_a_request_becomes_a_task_whose_row_the_worker_writes(host):
    status, _, body = https(host, "/tasks?note=hello-from-test", "-X POST")
    assert status == 202, f"{status} {body}\n{logs(host)}"
    task_id = json.loads(body)["task_id"]
    for _ in range(60):
        status, _, body = https(host, f"/tasks/{task_id}")
        if status == 200:
            break
        time.sleep(0.5)
    assert status == 200, f"task {task_id} never done: {body}\n{logs(host)}"
    result = json.loads(body)["result"]
    assert result["note"] == "hello-from-test"
    assert result["worker"].startswith("celery@")


def test_beat_schedules_ticks(host):
    count = 0
    for _ in range(40):
        status, _, body = https(host, "/beat")
        count = json.loads(body)["count"] if status == 200 else 0
        if count >= 2:
            break
        time.sleep(0.5)
    assert count >= 2, f"beat ticks: {count}\n{logs(host)}"


def test_every_service_runs_healthy_with_two_worker_containers(host):
    running = {}
    for container in containers(host, "shop-app"):
        service = container["Config"]["Labels"]["com.docker.compose.service"]
        running.setdefault(service, []).append(container["State"]["Health"]["Status"])
    assert running == {"web-a": ["healthy"], "worker": ["healthy", "healthy"], "beat": ["healthy"]}, logs(host)


def test_the_env_file_is_readable_by_the_app_user_only(host):
    env = host.file("/opt/shop/app/app.env")
    assert env.mode == 0o600 and env.uid == 1000
    assert "DATABASE_URL=" in env.content_string and "CELERY_BROKER_URL=" in env.content_string


@pytest.mark.parametrize("name", ["postgres_password", "redis_password"])
def test_no_secret_shows_in_docker_inspect_or_the_compose_file(host, name):
    secret = INPUTS[name]
    forms = {secret, urllib.parse.quote(secret, safe=""), INPUTS["app_secret_env"]["SECRET_KEY"]}
    inspected = host.check_output("docker inspect $(docker ps -q --filter label=com.docker.compose.project=shop-app)")
    compose = host.file("/opt/shop/app/compose.yaml").content_string
    for form in forms:
        assert form not in inspected and form not in compose


@pytest.mark.parametrize("project", PROJECTS)
def test_containers_run_unprivileged_on_a_read_only_root(host, project):
    found = containers(host, project)
    assert found, logs(host)
    for container in found:
        name, config, limits = container["Name"], container["Config"], container["HostConfig"]
        uid = host.file(f"/proc/{container['State']['Pid']}/status").content_string
        assert re.search(r"^Uid:\s+([1-9]\d*)\s", uid, re.M), f"{name} runs as root"
        assert config["User"] not in ("", "0", "root") and not config["User"].startswith("0:")
        assert "no-new-privileges:true" in limits["SecurityOpt"], name
        assert limits["CapDrop"] == ["ALL"] and not limits["CapAdd"], name
        assert limits["ReadonlyRootfs"] is True, name
        assert limits["Memory"] > 0 and limits["PidsLimit"] > 0, name
        assert limits["RestartPolicy"]["Name"] == "unless-stopped", name


def test_workers_get_a_warm_shutdown_with_a_long_grace_period(host):
    for container in containers(host, "shop-app"):
        if container["Config"]["Labels"]["com.docker.compose.service"] == "worker":
            assert container["Config"]["StopSignal"] == "SIGTERM"
            assert container["Config"]["StopTimeout"] == 600


def test_the_first_release_command_ran_once_without_a_backup(host):
    # A new server has nothing to back up (a release later does: molecule/multi_host).
    image_id = host.check_output("docker image inspect -f '{{.Id}}' deployer-sample/app:1")
    released = host.file("/opt/shop/app/released-image")
    assert released.content_string.strip() == image_id
    assert not host.file("/opt/shop/backup-before-release").exists
    assert host.check_output("docker ps -aq --filter label=com.docker.compose.service=release") == ""


def test_nginx_serves_the_static_files_of_the_image(host):
    status, headers, body = https(host, "/static/wsgi.py")
    assert status == 200, f"{status}\n{logs(host)}"
    assert "WSGI entry point" in body
    assert headers["cache-control"] == "max-age=3600"


def test_a_changed_nginx_setting_is_reloaded_not_restarted(host):
    before = host.file("/root/nginx-pid-before-change").content_string.strip()
    now = host.check_output("docker inspect -f '{{.State.Pid}}' shop-nginx-nginx-1")
    assert now == before, "nginx was restarted instead of reloaded"
    status, _, _ = https(host, "/tasks?note=big", "--data-binary \"$(head -c 4096 /dev/zero | tr '\\0' x)\"")
    assert status == 413, f"the 1k body limit of the side effect is not active: {status}\n{logs(host)}"


def test_a_client_sending_too_fast_is_rate_limited(host):
    # Last: it spends this client's burst (20 requests above 10 r/s).
    codes = host.check_output(
        "for i in $(seq 60); do curl -sk -o /dev/null -w '%{http_code}\\n' https://localhost/health; done")
    assert "429" in codes.split(), codes


def test_the_app_reaches_the_extra_service_by_name(host):
    """api2 (roles/extra_services) runs beside the stack on its network: the web container
    reaches it by name, and its /ready proves its *_FILE secrets reached PostgreSQL and Redis."""
    script = ("import json, urllib.request; r = urllib.request.urlopen('http://api2:8001/ready', timeout=10); "
              "print(r.status, json.load(r)['release'])")
    out = host.run(f"docker exec shop-app-web-a-1 python3 -c \"{script}\"")
    assert out.rc == 0 and out.stdout.split() == ["200", "extra-api2"], f"{out.stdout}{out.stderr}\n{logs(host)}"
    running = {container["Config"]["Labels"]["com.docker.compose.service"]: container["State"]["Health"]["Status"]
               for container in containers(host, "shop-extra")}
    assert running == {"api2": "healthy"}, logs(host)


def test_the_extra_service_secrets_are_private_and_a_dropped_service_is_gone(host):
    for name in ("database_url", "broker_url"):
        secret = host.file(f"/opt/shop/extra_services/secrets/api2/{name}")
        assert secret.mode == 0o600 and secret.uid == 1000, name
    compose = host.file("/opt/shop/extra_services/compose.yaml").content_string
    assert "api3" not in compose and INPUTS["postgres_password"] not in compose
    assert not host.file("/opt/shop/extra_services/secrets/api3").exists
    assert host.check_output("docker ps -aq --filter name=shop-extra-api3") == ""
