"""The local stack as a developer sees it: every service up through compose/, the request ->
Celery task -> PostgreSQL row path through nginx on 127.0.0.1:8000, beat ticking, a source
edit served by the running container, and the data kept across `down` and `up`."""
import json
import time

COMPOSE = ("cd /srv/checkout/compose && POSTGRES_IMAGE=deployer-test/postgres:17 "
           "REDIS_IMAGE=deployer-test/redis:8 NGINX_IMAGE=deployer-test/nginx:1.26 docker compose")
BASE = "http://127.0.0.1:8000"


def get(host, path, method="GET"):
    """(status, body) of one request through nginx."""
    out = host.run(f"curl -s --max-time 10 -X {method} -w '\\n%{{http_code}}' '{BASE}{path}'")
    body, _, status = out.stdout.rpartition("\n")
    return int(status or 0), body


def wait_for(host, path, accept, timeout=60):
    """The last (status, body) of path, polled until accept(status, body) or timeout."""
    deadline = time.monotonic() + timeout
    while True:
        status, body = get(host, path)
        if accept(status, body) or time.monotonic() > deadline:
            return status, body
        time.sleep(1)


def logs(host):
    return host.run(f"{COMPOSE} logs --no-color --tail 30").stdout


def services(host):
    """Compose's view of every container of the project, by service."""
    return {s["Service"]: s for s in map(json.loads, host.check_output(
        f"{COMPOSE} ps -a --format json").splitlines())}


def test_every_service_is_running_and_healthy(host):
    state = services(host)
    for service in ("postgres", "redis", "web-a", "worker", "beat", "nginx"):
        assert state[service]["State"] == "running", f"{service}: {state[service]}\n{logs(host)}"
    for service in ("postgres", "redis", "web-a", "nginx"):
        assert state[service]["Health"] == "healthy", f"{service}: {state[service]}"
    assert (state["release"]["State"], state["release"]["ExitCode"]) == ("exited", 0)


def test_only_nginx_is_published_and_only_on_loopback(host):
    published = {service: [(p["URL"], p["PublishedPort"]) for p in s["Publishers"] or []
                           if p["PublishedPort"]]
                 for service, s in services(host).items()}
    assert published.pop("nginx") == [("127.0.0.1", 8000)], published
    assert all(ports == [] for ports in published.values()), published


def test_a_request_through_nginx_becomes_a_row_written_by_a_worker(host):
    status, body = get(host, "/tasks?note=from-the-laptop", method="POST")
    assert status == 202, f"{status} {body}\n{logs(host)}"
    task_id = json.loads(body)["task_id"]
    status, body = wait_for(host, f"/tasks/{task_id}", lambda s, _: s == 200)
    assert status == 200, f"{status} {body}\n{logs(host)}"
    assert json.loads(body)["result"]["note"] == "from-the-laptop"


def test_beat_ticks(host):
    status, body = wait_for(host, "/beat", lambda s, b: s == 200 and json.loads(b)["count"] > 0, 90)
    assert status == 200 and json.loads(body)["count"] > 0, f"{status} {body}\n{logs(host)}"


def test_an_edit_of_the_mounted_source_is_served_without_a_restart(host):
    started = host.check_output(f"{COMPOSE} ps -q web-a")
    started_at = host.check_output(f"docker inspect -f '{{{{.State.StartedAt}}}}' {started}")
    assert get(host, "/reload-probe")[0] == 404
    host.run_expect([0], "cp /srv/checkout/sample_app/wsgi.py /var/tmp/wsgi.py.orig")
    host.run_expect([0], "printf '%s\\n' '' '@app.get(\"/reload-probe\")' "
                         "'def reload_probe():' '    return \"edited\"' "
                         ">> /srv/checkout/sample_app/wsgi.py")
    try:
        status, body = wait_for(host, "/reload-probe", lambda s, _: s == 200, 60)
        assert (status, body) == (200, "edited"), f"{status} {body}\n{logs(host)}"
    finally:
        host.run_expect([0], "cp /var/tmp/wsgi.py.orig /srv/checkout/sample_app/wsgi.py")
        # The restore reloads the app again; nginx answers 502 until the reloaded worker
        # listens, so the next test waits for the restored source to be served.
        restored = wait_for(host, "/reload-probe", lambda s, _: s == 404, 60)
        assert restored[0] == 404, f"{restored}\n{logs(host)}"
    same = host.check_output(f"docker inspect -f '{{{{.State.StartedAt}}}}' {started}")
    assert same == started_at, "the web container was restarted instead of reloading"


def test_down_and_up_keep_the_data(host):
    status, body = get(host, "/tasks?note=kept", method="POST")
    task_id = json.loads(body)["task_id"]
    assert wait_for(host, f"/tasks/{task_id}", lambda s, _: s == 200)[0] == 200
    host.run_expect([0], f"{COMPOSE} down")
    assert host.run(f"{COMPOSE} ps -q").stdout.strip() == ""
    host.run_expect([0], f"{COMPOSE} up -d --wait")
    status, body = wait_for(host, f"/tasks/{task_id}", lambda s, _: s == 200)
    assert status == 200 and json.loads(body)["result"]["note"] == "kept", f"{status} {body}"
