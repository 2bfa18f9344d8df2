"""What a user notices on a server the docker role converged: a running engine with Compose v2,
its daemon.json in effect, containers that run with rotated logs, scheduled pruning, and
docker_users who can use docker without sudo."""

import ipaddress
import json
from pathlib import Path

import pytest
import yaml

SCENARIO = Path(__file__).resolve().parents[1]
ROLE = SCENARIO.parents[1] / "roles" / "docker"
# The role's defaults overlaid with the scenario's inputs: what the host must show.
INPUTS = {
    **yaml.safe_load((ROLE / "defaults" / "main.yml").read_text()),
    **yaml.safe_load((SCENARIO / "inventory" / "group_vars" / "all.yml").read_text()),
}
# A one-binary image built on the host itself: the test host reaches no registry.
IMAGE = "docker-role-test/tiny:1"
PROJECT = "docker-role-smoke"


def journal(host, unit):
    return host.run(f"journalctl --no-pager -n 40 -u {unit}").stdout


def run_ok(host, command):
    result = host.run(command)
    assert result.rc == 0, f"{command} failed ({result.rc}):\n{result.stdout}{result.stderr}"
    return result.stdout


def test_engine_is_enabled_and_running(host):
    docker = host.service("docker")
    assert docker.is_enabled and docker.is_running, journal(host, "docker")


def test_compose_is_v2(host):
    version = run_ok(host, "docker compose version")
    assert version.startswith("Docker Compose version v2.") or version.startswith(
        "Docker Compose version 2."
    ), version


def test_docker_info_shows_daemon_json(host):
    info = json.loads(run_ok(host, "docker info --format '{{json .}}'"))
    assert info["LoggingDriver"] == INPUTS["docker_log_driver"]
    assert info["LiveRestoreEnabled"] is INPUTS["docker_live_restore_enabled"]
    assert info["DefaultAddressPools"] == [
        {"Base": pool["base"], "Size": pool["size"]} for pool in INPUTS["docker_default_address_pools"]
    ]


@pytest.fixture(scope="module")
def compose_project(host):
    """A Compose project of one long-running container, from an image imported on the host."""
    run_ok(
        host,
        "tar -chf - /usr/bin/sleep $(ldd /usr/bin/sleep | grep -o '/[^ ]*') 2>/dev/null"
        f" | docker import - {IMAGE}",
    )
    compose = f"services:\n  sleeper:\n    image: {IMAGE}\n    command: [/usr/bin/sleep, '600']\n"
    run_ok(host, f"printf '%s' \"{compose}\" | docker compose -p {PROJECT} -f - up -d")
    yield f"{PROJECT}-sleeper-1"
    host.run(f"docker compose -p {PROJECT} down --timeout 0")


def test_a_compose_container_runs_with_rotated_logs(host, compose_project):
    container = json.loads(run_ok(host, f"docker inspect {compose_project}"))[0]
    logs = host.run(f"docker logs {compose_project}")
    assert container["State"]["Running"], f"{container['State']}\n{logs.stdout}{logs.stderr}"
    assert container["HostConfig"]["LogConfig"] == {
        "Type": INPUTS["docker_log_driver"],
        "Config": {
            "max-size": INPUTS["docker_log_max_size"],
            "max-file": str(INPUTS["docker_log_max_file"]),
        },
    }


def test_compose_network_comes_from_the_default_address_pool(host, compose_project):
    network = json.loads(run_ok(host, f"docker network inspect {PROJECT}_default"))[0]
    subnet = ipaddress.ip_network(network["IPAM"]["Config"][0]["Subnet"])
    pool = INPUTS["docker_default_address_pools"][0]
    assert subnet.subnet_of(ipaddress.ip_network(pool["base"])), subnet
    assert subnet.prefixlen == pool["size"], subnet


def test_prune_timer_is_scheduled(host):
    timer = host.service("docker-prune.timer")
    assert timer.is_enabled and timer.is_running, journal(host, "docker-prune.timer")
    next_run = run_ok(host, "systemctl show -P NextElapseUSecRealtime docker-prune.timer").strip()
    assert next_run, "docker-prune.timer has no next run"


def test_prune_service_runs(host):
    result = host.run("systemctl start docker-prune.service")
    outcome = run_ok(host, "systemctl show -P Result docker-prune.service").strip()
    assert result.rc == 0 and outcome == "success", journal(host, "docker-prune.service")


@pytest.mark.parametrize("user", INPUTS["docker_users"])
def test_docker_users_use_docker_without_sudo(host, user):
    assert "docker" in host.user(user).groups
    run_ok(host, f"runuser -u {user} -- docker version --format '{{{{.Server.Version}}}}'")
