"""The container rules every service of the stack follows, checked over every compose file the
roles render (each roles/*/templates/*compose*.j2, found anew on every run, so a new role's
compose file is covered without editing this test) and over the local stack in compose/.

The rules, and where they are enforced:
- runs as a non-root user (`user:` set, not root);
- `cap_drop: [ALL]`, and no capability added back;
- `no-new-privileges:true`;
- a read-only root filesystem (`read_only: true`);
- `mem_limit` and `pids_limit`;
- a restart policy and a healthcheck with `start_interval` (dependants wait seconds, not an
  interval);
- log rotation: no service sets its own `logging`, so the daemon's rotation applies, which
  roles/docker writes into daemon.json (checked below);
- no docker socket, no privileged mode, no host network/pid/ipc namespace;
- secrets never inline: an environment variable whose name says it is secret is a *_FILE path.

The only exceptions are listed in EXCEPTIONS, each with its reason."""
import json
import re
from pathlib import Path

import pytest
import yaml
from ansible.template import trust_as_template

from test_app import _trusted, role_templar

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = sorted(REPO.glob("roles/*/templates/*compose*.j2"))
LOCAL_FILES = sorted(REPO.glob("compose/*/compose.yaml"))

# Realistic inputs: those the Molecule web scenario deploys the stack with (real passwords,
# the test images, extra services), plus the host facts templates read.
WEB_INPUTS = yaml.safe_load((REPO / "molecule" / "web" / "vars" / "inputs.yml").read_text())
FACTS = {"ansible_facts": {"memtotal_mb": 4096, "processor_vcpus": 2}, "group_names": ["app", "lb"]}
# Each role is also rendered with every optional part switched on (published ports, media,
# a second instance...), so that no branch of a template escapes the rules.
VARIANTS = {
    "postgres": [{}, {"postgres_listen_address": "10.0.0.5", "postgres_data_path": "/srv/pg"}],
    "redis": [{}, {"redis_listen_address": "fd00::5", "redis_instance_name": "cache"}],
    "app": [{}, {"app_media_path": "/app/media", "app_web_listen_address": "10.0.0.6",
                 "app_worker_queues": ["mail"]}],
    "nginx": [{}, {"nginx_tls_enabled": False}],
    "extra_services": [{}, {"extra_services_list": [
        {"name": "search", "image": "getmeili/meilisearch:v1.10", "groups": ["app"], "user": "1000:1000",
         "command": "meilisearch --db-path /data", "ports": ["127.0.0.1:7700:7700"],
         "volumes": ["search-data:/data"], "secret_files": {"master_key": "k"},
         "environment": {"MEILI_MASTER_KEY_FILE": "/run/secrets/master_key"},
         "healthcheck": {"test": "curl -fsS http://127.0.0.1:7700/health"}},
        {"name": "frontend", "image": "shop/frontend:1", "groups": ["lb"], "memory_limit": "64m",
         "pids_limit": 32, "healthcheck": {"test": ["CMD", "wget", "-qO-", "http://127.0.0.1:8080/"]}}]}],
}

# (role, service, rule): why the rule does not apply there. Nothing else is exempt.
EXCEPTIONS = {
    ("app", "release", "healthcheck"): "a one-off command (`docker compose run --rm release`), "
                                       "never started by `up`, so nothing waits on its health",
    ("app", "release", "restart"): "a one-off command must not be restarted when it exits",
}

SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|(^|_)KEY$|CREDENTIAL", re.I)
DOCKER_SOCKET = re.compile(r"(^|/)docker\.sock$")


def role_of(path):
    return path.parents[1].name if path.parent.name == "templates" else path.parent.name


def render(template, inputs):
    role = role_of(template)
    variables = {**FACTS, **_trusted(WEB_INPUTS), **_trusted(inputs),
                 "ansible_search_path": [str(REPO / "roles" / role)]}
    templar = role_templar(role, variables)
    # escape_backslashes=False: template files keep Jinja's own string escapes, as in a play.
    return yaml.safe_load(templar.template(trust_as_template(template.read_text()), escape_backslashes=False))


CASES = [pytest.param(template, inputs, id=f"{role_of(template)}/{template.name}#{index}")
         for template in TEMPLATES for index, inputs in enumerate(VARIANTS.get(role_of(template), [{}]))]


def mounts(service):
    for volume in service.get("volumes", []):
        yield (volume.get("source", "") if isinstance(volume, dict) else volume.split(":")[0])


def violations(role, service_name, service):
    """[(rule, what is wrong)] of one service."""
    user = str(service.get("user", ""))
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(entry.split("=", 1) for entry in environment)
    logging = service.get("logging")
    healthcheck = service.get("healthcheck") or {}
    checks = {
        "user": (user and user.split(":")[0] not in ("0", "root"), f"user is {user!r}, not a non-root user"),
        "cap_drop": (service.get("cap_drop") == ["ALL"] and not service.get("cap_add"),
                     f"cap_drop {service.get('cap_drop')}, cap_add {service.get('cap_add')}"),
        "no-new-privileges": ("no-new-privileges:true" in service.get("security_opt", []),
                              f"security_opt {service.get('security_opt')}"),
        "read_only": (service.get("read_only") is True, "the root filesystem is writable"),
        "mem_limit": (bool(service.get("mem_limit")), "no mem_limit"),
        "pids_limit": (int(service.get("pids_limit") or 0) > 0, "no pids_limit"),
        "restart": (service.get("restart") in ("unless-stopped", "always"), f"restart {service.get('restart')!r}"),
        "healthcheck": (bool(healthcheck.get("test")) and not healthcheck.get("disable")
                        and "start_interval" in healthcheck, f"healthcheck {healthcheck}"),
        "logging": (logging is None or "max-size" in (logging.get("options") or {}),
                    f"logging {logging} overrides the daemon's log rotation"),
        "docker socket": (not any(DOCKER_SOCKET.search(source) for source in mounts(service)),
                          "mounts the docker socket"),
        "host namespaces": (not service.get("privileged") and "host" not in
                            (service.get("network_mode"), service.get("pid"), service.get("ipc")),
                            "privileged or a host namespace"),
        "secrets as files": (all(name.endswith("_FILE") for name in environment if SECRET_NAME.search(name)),
                             f"secret-looking variables inline: {sorted(environment)}"),
    }
    return [(rule, f"{role}/{service_name}: {message} (rule: {rule})")
            for rule, (ok, message) in checks.items()
            if not ok and (role, service_name, rule) not in EXCEPTIONS]


def assert_follows_the_rules(role, project):
    assert project.get("services"), f"{role}: no services rendered"
    problems = [message for name, service in project["services"].items()
                for _, message in violations(role, name, service)]
    assert not problems, "\n".join(problems)


def test_every_compose_template_is_found():
    # The four stack roles at least; any other role's compose template joins on its own.
    assert {"app", "nginx", "postgres", "redis"} <= {role_of(path) for path in TEMPLATES}


@pytest.mark.parametrize("template, inputs", CASES)
def test_every_rendered_service_follows_the_container_rules(template, inputs):
    assert_follows_the_rules(role_of(template), render(template, inputs))


@pytest.mark.parametrize("path", LOCAL_FILES, ids=lambda path: str(path.relative_to(REPO)))
def test_the_local_stack_follows_the_container_rules(path):
    assert_follows_the_rules(path.parent.name, yaml.safe_load(path.read_text()))


class ComposeLoader(yaml.SafeLoader):
    """Reads Compose's own tags (!reset, !override) as plain values."""


ComposeLoader.add_multi_constructor("!", lambda loader, suffix, node: (
    loader.construct_sequence(node) if isinstance(node, yaml.SequenceNode)
    else loader.construct_mapping(node) if isinstance(node, yaml.MappingNode) else loader.construct_scalar(node)))


def test_the_local_dev_overrides_add_no_socket_nor_privileges():
    for path in REPO.glob("compose/*.dev.yaml"):
        for name, service in (yaml.load(path.read_text(), ComposeLoader).get("services") or {}).items():
            forbidden = {"user", "cap_add", "privileged", "security_opt", "read_only", "network_mode",
                         "pid", "ipc", "logging", "healthcheck"} & set(service)
            assert not forbidden, f"{path.name} changes {forbidden} of {name}"
            assert not any(DOCKER_SOCKET.search(source) for source in mounts(service)), f"{path.name}: {name}"


def test_the_daemon_rotates_every_container_log():
    templar = role_templar("docker", {})
    daemon = json.loads(templar.template(trust_as_template(
        (REPO / "roles" / "docker" / "templates" / "daemon.json.j2").read_text())))
    assert daemon["log-driver"] in ("json-file", "local")
    assert re.fullmatch(r"\d+[kmg]", daemon["log-opts"]["max-size"])
    assert int(daemon["log-opts"]["max-file"]) >= 1


@pytest.mark.parametrize("broken, rule", [
    ({"read_only": False}, "read_only"), ({"cap_drop": ["NET_RAW"]}, "cap_drop"),
    ({"cap_add": ["SYS_ADMIN"]}, "cap_drop"), ({"user": "0:0"}, "user"), ({"user": None}, "user"),
    ({"security_opt": []}, "no-new-privileges"), ({"mem_limit": None}, "mem_limit"),
    ({"pids_limit": None}, "pids_limit"), ({"restart": "no"}, "restart"),
    ({"healthcheck": {"disable": True}}, "healthcheck"), ({"logging": {"driver": "json-file"}}, "logging"),
    ({"volumes": ["/var/run/docker.sock:/var/run/docker.sock"]}, "docker socket"),
    ({"volumes": [{"type": "bind", "source": "/run/docker.sock", "target": "/s"}]}, "docker socket"),
    ({"network_mode": "host"}, "host namespaces"), ({"privileged": True}, "host namespaces"),
    ({"environment": {"API_TOKEN": "x"}}, "secrets as files"),
])
def test_each_rule_catches_its_violation(broken, rule):
    good = render(REPO / "roles" / "redis" / "templates" / "compose.yaml.j2", {})["services"]["redis"]
    assert violations("redis", "redis", good) == []
    bad = {key: value for key, value in {**good, **broken}.items() if value is not None}
    assert [found for found, _ in violations("redis", "redis", bad)] == [rule]
