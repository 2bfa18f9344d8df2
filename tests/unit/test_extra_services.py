"""roles/extra_services without Docker: which services a host gets, the compose file they
render into (the container rules themselves are checked by test_container_rules.py), and the
input checks, each naming what to fix. Molecule's web scenario runs the role for real."""
from pathlib import Path

import pytest
import yaml
from ansible.template import trust_as_template

from conftest import validate_role_cases
from test_app import _trusted, role_templar

TEMPLATE = Path(__file__).resolve().parents[2] / "roles" / "extra_services" / "templates" / "compose.yaml.j2"
HEALTH = {"test": ["CMD", "true"]}
SEARCH = {"name": "search", "image": "search:1", "groups": ["app"], "healthcheck": HEALTH}
FRONTEND = {"name": "frontend", "image": "front:1", "groups": ["lb"], "healthcheck": HEALTH}


def templar(services, group_names):
    return role_templar("extra_services", _trusted({"extra_services_stack_name": "shop",
                                                    "extra_services_list": services, "group_names": group_names}))


def compose(services, group_names=("app",)):
    return yaml.safe_load(templar(services, list(group_names)).template(trust_as_template(TEMPLATE.read_text())))


def test_a_host_runs_the_services_of_its_groups_only():
    assert list(compose([SEARCH, FRONTEND], ["app"])["services"]) == ["search"]
    assert list(compose([SEARCH, FRONTEND], ["app", "lb"])["services"]) == ["search", "frontend"]
    assert list(compose([{**SEARCH, "groups": ["all"]}], [])["services"]) == ["search"]
    assert templar([SEARCH], ["db"]).template(trust_as_template("{{ __extra_services_here }}")) == []


def test_the_services_join_the_stack_network_in_their_own_project():
    project = compose([SEARCH])
    assert project["name"] == "shop-extra"
    assert project["networks"]["default"] == {"name": "shop", "external": True}


def test_commands_environment_and_healthchecks_keep_dollars_literal():
    service = compose([{**SEARCH, "command": ["run", "$HOME"], "environment": {"A": "x$y", "N": 3},
                        "healthcheck": {"test": "curl -f http://127.0.0.1/$PATH", "retries": 5}}])["services"]["search"]
    assert service["command"] == ["run", "$$HOME"]
    assert service["environment"] == {"A": "x$$y", "N": "3"}
    assert service["healthcheck"]["test"] == "curl -f http://127.0.0.1/$$PATH"
    assert service["healthcheck"]["retries"] == 5 and service["healthcheck"]["start_interval"] == "1s"
    assert compose([{**SEARCH, "command": "serve --port 80"}])["services"]["search"]["command"] == "serve --port 80"


def test_secret_files_are_compose_secrets_whose_change_recreates_the_service():
    project = compose([{**SEARCH, "secret_files": {"master_key": "k1"}}])
    service = project["services"]["search"]
    assert service["secrets"] == [{"source": "search_master_key", "target": "master_key"}]
    assert project["secrets"] == {"search_master_key": {"file": "/opt/shop/extra_services/secrets/search/master_key"}}
    assert "k1" not in yaml.safe_dump(project)
    other = compose([{**SEARCH, "secret_files": {"master_key": "k2"}}])["services"]["search"]
    assert service["labels"]["deployer.secrets-sha256"] != other["labels"]["deployer.secrets-sha256"]


def test_named_volumes_are_declared_and_host_paths_are_not():
    project = compose([{**SEARCH, "volumes": ["search-data:/data", "/srv/dumps:/dumps:ro"]}])
    assert project["services"]["search"]["volumes"] == ["search-data:/data", "/srv/dumps:/dumps:ro"]
    assert project["volumes"] == {"search-data": {"name": "search-data"}}


def test_the_defaults_and_a_service_own_settings():
    default = compose([SEARCH])["services"]["search"]
    assert (default["user"], default["mem_limit"], default["pids_limit"], default["read_only"]) == (
        "1000:1000", "256m", 256, True)
    own = compose([{**SEARCH, "user": "101:101", "memory_limit": "1g", "pids_limit": 9, "read_only": False,
                    "ports": ["127.0.0.1:7700:7700"]}])["services"]["search"]
    assert (own["user"], own["mem_limit"], own["pids_limit"], own["read_only"], own["ports"]) == (
        "101:101", "1g", 9, False, ["127.0.0.1:7700:7700"])


def service(**changes):
    return {**SEARCH, "groups": ["all"], **changes}


CASES = {
    "valid": ({"extra_services_list": [service(), service(name="ws", ports=["8080:80", "[::1]:9000:9000/udp"],
                                                      volumes=["data:/data", "/srv:/srv:ro"])]}, None),
    "none": ({"extra_services_list": []}, None),
    "bad name": ({"extra_services_list": [service(name="Search_1")]}, "lowercase letters, digits and '-'"),
    "duplicate": ({"extra_services_list": [service(), service()]}, "each name once"),
    "stack name": ({"extra_services_list": [service(name="web")]}, "none of the stack's own services"),
    "no image": ({"extra_services_list": [service(image="")]}, "'search' needs an image"),
    "unknown group": ({"extra_services_list": [service(groups=["search"])]}, "it is ['search']"),
    "port range": ({"extra_services_list": [service(ports=["70000:80"])]}, "wrong: ['70000:80']"),
    "port form": ({"extra_services_list": [service(ports=["80"])]}, "wrong: ['80']"),
    "volume form": ({"extra_services_list": [service(volumes=["data"])]}, "wrong: ['data']"),
    "docker socket": ({"extra_services_list": [service(volumes=["/var/run/docker.sock:/var/run/docker.sock"])]},
                      "docker socket is never mounted"),
    "root user": ({"extra_services_list": [service(user="0:0")]}, "a non-root \"uid:gid\" (it is '0:0')"),
    "no healthcheck test": ({"extra_services_list": [service(healthcheck={"interval": "5s"})]}, "healthcheck.test"),
    "command of numbers": ({"extra_services_list": [service(command=["sleep", 5])]}, "command must be a string"),
    "env name": ({"extra_services_list": [service(environment={"1X": "y"})]}, "environment names"),
    "default user root": ({"extra_services_default_user": "root"}, "extra_services_default_user a non-root"),
    "missing healthcheck": ({"extra_services_list": [{"name": "a", "image": "a:1", "groups": ["all"]}]},
                            "healthcheck"),
}


@pytest.fixture(scope="module")
def validation(tmp_path_factory):
    return validate_role_cases("extra_services", CASES, {"extra_services_stack_name": "shop"},
                               tmp_path_factory.mktemp("extra_services"))


@pytest.mark.parametrize("case", CASES)
def test_validation_names_what_to_fix(validation, case):
    expected = CASES[case][1]
    if expected is None:
        assert validation[case] is None
    else:
        assert validation[case] and expected in validation[case], validation[case]
