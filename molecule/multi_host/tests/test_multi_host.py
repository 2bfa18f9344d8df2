"""Five hosts, one per tier, deployed by site.yml: what crosses the network, what the
firewall lets through, and releases under continuous requests through the load balancer.

The release tests run in file order: a good release (deploy.yml), a broken one, then
rollback.yml. Each starts a load generator (tests/load/https_load.py) on the lb host that
asks https://127.0.0.1/health as fast as it gets answers, runs the playbook from the control
node, stops the generator and asserts on what it counted."""
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import testinfra

SCENARIO = Path(__file__).resolve().parents[1]
REPO = SCENARIO.parents[1]
APP_HOSTS = ("mh-app1", "mh-app2")
ALL_HOSTS = ("mh-lb", *APP_HOSTS, "mh-worker", "mh-data")

# The load generator (tests/load/https_load.py) runs on the lb host against nginx.
LOAD = (REPO / "tests" / "load" / "https_load.py").read_text()


@pytest.fixture(scope="module")
def hosts(request):
    inventory = request.config.option.ansible_inventory
    return {name: testinfra.get_host(f"ansible://{name}", ansible_inventory=inventory) for name in ALL_HOSTS}


@pytest.fixture(scope="module")
def inventory(request):
    return request.config.option.ansible_inventory


def address(host):
    """The host's address on the test network (its default route's source, as the wiring's
    ansible_facts.default_ipv4), not one of its own docker bridges."""
    return host.check_output(
        "python3 -c %s", "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
        "s.connect(('10.255.255.255', 1)); print(s.getsockname()[0])")


def lb_get(hosts, path):
    """GET https://127.0.0.1<path> on the lb host: (status, JSON body)."""
    script = ("import json, ssl, sys, urllib.request, urllib.error\n"
              "c = ssl.create_default_context(); c.check_hostname = False; c.verify_mode = ssl.CERT_NONE\n"
              "try:\n"
              "    r = urllib.request.urlopen('https://127.0.0.1' + sys.argv[1], timeout=10, context=c)\n"
              "except urllib.error.HTTPError as e:\n"
              "    r = e\n"
              "print(r.status, r.read().decode())\n")
    out = hosts["mh-lb"].check_output("python3 -c %s %s", script, path)
    status, _, body = out.partition(" ")
    return int(status), json.loads(body)


def can_connect(host, target, port):
    script = ("import socket, sys\n"
              "try:\n"
              "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close(); print('open')\n"
              "except OSError as e:\n"
              "    print('closed', type(e).__name__)\n")
    return host.check_output("python3 -c %s %s %s", script, target, str(port)).startswith("open")


def services(host):
    """{compose service: [health or state]} of the stack's containers on a host."""
    running = {}
    for line in host.check_output(
            "docker ps --filter label=com.docker.compose.project "
            "--format '{{.Label \"com.docker.compose.service\"}} {{.State}} {{.Status}}'").splitlines():
        service, state, status = line.split(" ", 2)
        running.setdefault(service, []).append("healthy" if "(healthy)" in status else state)
    return running


def serving_slot(host):
    return host.file("/opt/shop/app/web-slot").content_string.strip()


def releases(host):
    return json.loads(host.file("/opt/shop/app/releases.json").content_string)


def logs(hosts):
    return "\n".join(f"--- {name}\n" + hosts[name].run("cd /opt/shop/app && docker compose logs --tail 15").stdout
                     for name in (*APP_HOSTS, "mh-worker"))


class Load:
    """The load generator on the lb host, as a context manager; .result after the block."""

    def __init__(self, hosts):
        self.lb = hosts["mh-lb"]

    def __enter__(self):
        self.lb.run_expect([0], "rm -f /tmp/load.stop /tmp/load.json && cat > /tmp/load.py <<'EOF'\n%s\nEOF" % LOAD)
        self.lb.run_expect([0], "setsid nohup python3 /tmp/load.py https://127.0.0.1/health /tmp/load.stop "
                                "/tmp/load.json >/tmp/load.log 2>&1 </dev/null &")
        time.sleep(2)
        return self

    def __exit__(self, *exc):
        self.lb.run_expect([0], "touch /tmp/load.stop")
        for _ in range(60):
            if self.lb.file("/tmp/load.json").exists:
                break
            time.sleep(0.5)
        self.result = json.loads(self.lb.file("/tmp/load.json").content_string)
        return False


def playbook(inventory, name, *extra):
    """Runs playbooks/<name> against this scenario's hosts from the control node."""
    command = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", inventory,
               str(REPO / "playbooks" / name), *extra]
    return subprocess.run(command, cwd=REPO, env=os.environ, capture_output=True, text=True, timeout=1800)


def test_each_tier_runs_on_its_own_host(hosts):
    assert services(hosts["mh-lb"]) == {"nginx": ["healthy"]}
    for name in APP_HOSTS:
        assert services(hosts[name]) == {"web-a": ["healthy"]}, logs(hosts)
    assert services(hosts["mh-worker"]) == {"worker": ["healthy"], "beat": ["healthy"]}, logs(hosts)
    assert services(hosts["mh-data"]) == {"postgres": ["healthy"], "redis": ["healthy"]}


def test_requests_through_the_lb_reach_both_app_hosts(hosts):
    marker = uuid.uuid4().hex
    for _ in range(20):
        assert lb_get(hosts, f"/health?probe={marker}")[0] == 200
    answered = {name: int(hosts[name].run(
        "docker logs shop-app-web-a-1 2>&1 | grep -c %s", marker).stdout.strip() or 0) for name in APP_HOSTS}
    assert all(count > 0 for count in answered.values()) and sum(answered.values()) == 20, answered


def test_the_data_ports_are_closed_to_the_lb_and_open_to_app_and_worker_hosts(hosts):
    data = address(hosts["mh-data"])
    for port in (5432, 6379):
        assert not can_connect(hosts["mh-lb"], data, port), port
        for name in (*APP_HOSTS, "mh-worker"):
            assert can_connect(hosts[name], data, port), (name, port)


def test_the_app_port_is_open_to_the_lb_only(hosts):
    app1 = address(hosts["mh-app1"])
    assert can_connect(hosts["mh-lb"], app1, 8000)
    assert not can_connect(hosts["mh-data"], app1, 8000)
    assert not can_connect(hosts["mh-worker"], app1, 8000)


def post_task(hosts, note, seconds=0):
    """POST /tasks through the lb: the id of the Celery task that records the note."""
    command = ("import json, ssl, sys, urllib.request\n"
               "c = ssl.create_default_context(); c.check_hostname = False; c.verify_mode = ssl.CERT_NONE\n"
               "r = urllib.request.urlopen(urllib.request.Request('https://127.0.0.1/tasks?' + sys.argv[1],"
               " method='POST'), timeout=10, context=c)\n"
               "print(json.load(r)['task_id'])\n")
    return hosts["mh-lb"].check_output("python3 -c %s %s", command, f"note={note}&seconds={seconds}")


def task_result(hosts, task_id, wait=60):
    """The task's row (GET /tasks/<id>), waiting up to `wait` seconds for it."""
    for _ in range(wait):
        status, body = lb_get(hosts, f"/tasks/{task_id}")
        if status == 200:
            return body["result"]
        time.sleep(1)
    raise AssertionError(f"task {task_id} was not done within {wait} s: {body}\n{logs(hosts)}")


def test_a_task_sent_through_the_lb_is_run_on_the_worker_host(hosts):
    status, body = lb_get(hosts, "/ready")
    assert status == 200, body
    assert task_result(hosts, post_task(hosts, "multi"))["note"] == "multi"


def test_a_worker_replaced_mid_task_finishes_it_first(hosts):
    """Replacing the worker container as a release does (compose recreates it: SIGTERM, which
    is Celery's warm shutdown, then up to the grace period) loses no running task."""
    worker = hosts["mh-worker"]
    old = worker.check_output("docker ps -q --filter label=com.docker.compose.service=worker")
    old_hostname = worker.check_output("docker inspect -f '{{.Config.Hostname}}' %s", old)
    task_id = post_task(hosts, "warm-shutdown", seconds=12)
    time.sleep(3)  # the idle worker has taken it and sleeps in it
    started = time.monotonic()
    worker.run_expect([0], "docker compose -f /opt/shop/app/compose.yaml up -d --force-recreate --no-deps worker")
    took = time.monotonic() - started
    result = task_result(hosts, task_id, wait=10)
    assert result["worker"] == f"celery@{old_hostname}", (result, logs(hosts))
    # The old worker stopped only once its task was done, about 9 s after the recreate began.
    assert took >= 6, took
    assert worker.check_output("docker ps -q --filter label=com.docker.compose.service=worker") != old


def test_beat_runs_on_exactly_one_host(hosts):
    assert [name for name in ALL_HOSTS if "beat" in services(hosts[name])] == ["mh-worker"]


def postgres_backups(hosts):
    return set(hosts["mh-data"].check_output("ls -A /var/backups/shop/postgres 2>/dev/null || true").split())


def test_a_release_under_continuous_requests_fails_none(hosts, inventory):
    backups_before = postgres_backups(hosts)
    with Load(hosts) as load:
        run = playbook(inventory, "deploy.yml", "-e", "app_image=deployer-sample/app:2",
                       "-e", "app_image_source=build",
                       "-e", f"app_image_build_path={SCENARIO / 'images' / 'app-2'}")
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    result = load.result
    print("load during the release:", json.dumps(result))
    assert result["failed"] == 0, result
    assert result["ok"] >= 100, result
    assert set(result["releases"]) == {"dev", "2"}, result
    assert {lb_get(hosts, "/health")[1]["release"] for _ in range(10)} == {"2"}
    for name in APP_HOSTS:
        assert serving_slot(hosts[name]) == "b"
        assert services(hosts[name]) == {"web-b": ["healthy"]}, logs(hosts)
        assert [r["source"] for r in releases(hosts[name])] == ["deployer-sample/app:1", "deployer-sample/app:2"]
    assert services(hosts["mh-worker"]) == {"worker": ["healthy"], "beat": ["healthy"]}
    worker_image = hosts["mh-worker"].check_output(
        "docker inspect -f '{{.Config.Image}}' $(docker ps -q --filter label=com.docker.compose.service=worker)")
    assert worker_image == releases(hosts["mh-worker"])[-1]["image"]
    # The database host backed up before the release command ran on the first app host.
    new_backups = postgres_backups(hosts) - backups_before
    assert len(new_backups) == 1, (backups_before, new_backups)
    backup = hosts["mh-data"].file(f"/var/backups/shop/postgres/{new_backups.pop()}")
    assert backup.mtime <= hosts["mh-app1"].file("/opt/shop/app/released-image").mtime


def test_a_broken_release_rolls_back_and_the_old_one_keeps_answering(hosts, inventory):
    with Load(hosts) as load:
        run = playbook(inventory, "deploy.yml", "-e", "app_image=deployer-sample/app:broken",
                       "-e", "app_image_source=build", "-e", "app_wait_timeout=60",
                       "-e", f"app_image_build_path={SCENARIO / 'images' / 'app-broken'}")
    assert run.returncode != 0, run.stdout[-6000:]
    # Ansible prints task errors on stderr, and wraps long messages.
    output = " ".join((run.stdout + run.stderr).split())
    assert "did not become healthy on mh-app1" in output, run.stderr[-6000:]
    assert "broken on purpose" in output, run.stderr[-6000:]  # the new slot's own log lines
    assert "The release failed and was undone" in output, run.stderr[-6000:]
    result = load.result
    print("load during the broken release:", json.dumps(result))
    assert result["failed"] == 0, result
    assert set(result["releases"]) == {"2"}, result
    for name in APP_HOSTS:
        assert serving_slot(hosts[name]) == "b"
        assert services(hosts[name]) == {"web-b": ["healthy"]}, logs(hosts)
        assert releases(hosts[name])[-1]["source"] == "deployer-sample/app:2"
    assert releases(hosts["mh-worker"])[-1]["source"] == "deployer-sample/app:2"


def test_rollback_returns_to_the_previous_release_without_failed_requests(hosts, inventory):
    with Load(hosts) as load:
        run = playbook(inventory, "rollback.yml")
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    result = load.result
    print("load during the rollback:", json.dumps(result))
    assert result["failed"] == 0, result
    assert {lb_get(hosts, "/health")[1]["release"] for _ in range(10)} == {"dev"}
    for name in (*APP_HOSTS, "mh-worker"):
        assert [r["source"] for r in releases(hosts[name])] == ["deployer-sample/app:1"]
    for name in APP_HOSTS:
        assert serving_slot(hosts[name]) == "a"
    assert [name for name in ALL_HOSTS if "beat" in services(hosts[name])] == ["mh-worker"]
