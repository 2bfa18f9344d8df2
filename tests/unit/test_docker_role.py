"""The docker role without a test host: the files it renders (daemon.json, Docker's apt source,
the prune units) and the packages it picks, for both install sources and edge-case inputs; and
its validation, which must stop bad input before anything changes, naming the variable."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "docker"
VENV_BIN = Path(sys.executable).parent

PLATFORMS = {
    "debian13": {"distribution": "Debian", "distribution_version": "13.2",
                 "distribution_major_version": "13", "distribution_release": "trixie",
                 "architecture": "x86_64"},
    "debian12": {"distribution": "Debian", "distribution_version": "12.12",
                 "distribution_major_version": "12", "distribution_release": "bookworm",
                 "architecture": "x86_64"},
    "debian11": {"distribution": "Debian", "distribution_version": "11.11",
                 "distribution_major_version": "11", "distribution_release": "bullseye",
                 "architecture": "x86_64"},
    "ubuntu2204": {"distribution": "Ubuntu", "distribution_version": "22.04",
                   "distribution_major_version": "22", "distribution_release": "jammy",
                   "architecture": "x86_64"},
    "ubuntu2404_arm": {"distribution": "Ubuntu", "distribution_version": "24.04",
                       "distribution_major_version": "24", "distribution_release": "noble",
                       "architecture": "aarch64"},
}


def trusted(value):
    """Vars files are trusted templates in a play; mark them so here too."""
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {key: trusted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [trusted(item) for item in value]
    return value


def templar(platform="debian13", **inputs):
    """Ansible's templating with the role's defaults, the inputs, its vars and a platform's facts."""
    loader = DataLoader()
    variables = {
        **trusted(yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())),
        **inputs,
        **trusted(yaml.safe_load((ROLE / "vars" / "main.yml").read_text())),
        "ansible_facts": PLATFORMS[platform],
        "ansible_managed": "Ansible managed",
    }
    return Templar(loader=loader, variables=variables)


def render(template, platform="debian13", **inputs):
    source = (ROLE / "templates" / template).read_text()
    return templar(platform, **inputs).template(trust_as_template(source))


def evaluate(name, platform="debian13", **inputs):
    return templar(platform, **inputs).template(trust_as_template("{{ %s }}" % name))


# -- daemon.json ----------------------------------------------------------------------------

def test_daemon_json_defaults_rotate_logs_and_keep_docker_address_pools():
    assert json.loads(render("daemon.json.j2")) == {
        "log-driver": "json-file",
        "log-opts": {"max-size": "10m", "max-file": "3"},
        "live-restore": True,
    }


def test_daemon_json_carries_pools_and_extra_options_with_string_log_opts():
    config = json.loads(render(
        "daemon.json.j2",
        docker_log_driver="local",
        docker_log_max_size="50m",
        docker_log_max_file=5,
        docker_live_restore_enabled=False,
        docker_default_address_pools=[{"base": "10.213.0.0/16", "size": 24},
                                      {"base": "fd00:d0c::/104", "size": 112}],
        docker_daemon_extra_options={"storage-driver": "overlay2", "features": {"buildkit": True}},
    ))
    assert config == {
        "log-driver": "local",
        # dockerd rejects numbers here: every log option is a string.
        "log-opts": {"max-size": "50m", "max-file": "5"},
        "live-restore": False,
        "default-address-pools": [{"base": "10.213.0.0/16", "size": 24},
                                  {"base": "fd00:d0c::/104", "size": 112}],
        "storage-driver": "overlay2",
        "features": {"buildkit": True},
    }


def test_daemon_json_is_stable_text():
    """Sorted keys and a final newline: re-rendering never reports a change."""
    text = render("daemon.json.j2", docker_daemon_extra_options={"a": 1, "z": 2})
    assert text.endswith("}\n")
    assert list(json.loads(text)) == sorted(json.loads(text))


# -- Docker's apt repository ----------------------------------------------------------------

def sources(text):
    return dict(line.split(": ", 1) for line in text.splitlines() if line and not line.startswith("#"))


def test_apt_source_for_debian_12():
    text = render("docker.sources.j2", "debian12", docker_install_source="official")
    assert text.startswith("#\n# Ansible managed\n#\n")
    assert sources(text) == {
        "Types": "deb",
        "URIs": "https://download.docker.com/linux/debian",
        "Suites": "bookworm",
        "Components": "stable",
        "Architectures": "amd64",
        "Signed-By": "/etc/apt/keyrings/docker.asc",
    }


def test_apt_source_for_ubuntu_24_04_on_arm_from_a_mirror():
    inputs = {"docker_install_source": "official", "docker_official_url": "http://mirror.example/docker"}
    assert sources(render("docker.sources.j2", "ubuntu2404_arm", **inputs)) == {
        "Types": "deb",
        "URIs": "http://mirror.example/docker/ubuntu",
        "Suites": "noble",
        "Components": "stable",
        "Architectures": "arm64",
        "Signed-By": "/etc/apt/keyrings/docker.asc",
    }
    # The key comes from the same mirror unless docker_official_key_url says otherwise.
    assert evaluate("docker_official_key_url", "ubuntu2404_arm", **inputs) == \
        "http://mirror.example/docker/ubuntu/gpg"


# -- packages -------------------------------------------------------------------------------

@pytest.mark.parametrize(("inputs", "expected"), [
    ({}, ["docker.io", "docker-cli", "docker-compose", "apparmor", "python3-requests"]),
    ({"docker_install_source": "official"},
     ["containerd.io", "docker-compose-plugin", "docker-ce", "docker-ce-cli",
      "apparmor", "python3-requests"]),
    ({"docker_install_source": "official", "docker_official_version": "5:27.3.1-1~debian.12~bookworm"},
     ["containerd.io", "docker-compose-plugin",
      "docker-ce=5:27.3.1-1~debian.12~bookworm", "docker-ce-cli=5:27.3.1-1~debian.12~bookworm",
      "apparmor", "python3-requests"]),
])
def test_packages(inputs, expected):
    assert evaluate("__docker_packages", **inputs) == expected


@pytest.mark.parametrize(("platform", "expected"), [
    ("debian13", "Debian 13"), ("debian12", "Debian 12"), ("ubuntu2204", "Ubuntu 22.04"),
])
def test_platform_names_match_the_supported_list(platform, expected):
    assert evaluate("__docker_platform", platform) == expected


# -- pruning --------------------------------------------------------------------------------

def test_prune_units_use_the_schedule_and_age():
    service = render("docker-prune.service.j2", docker_prune_older_than_hours=72)
    timer = render("docker-prune.timer.j2", docker_prune_on_calendar="Sun *-*-* 03:00")
    assert ("ExecStart=/usr/bin/docker system prune --all --force --filter until=72h\n") in service
    assert "--volumes" not in service.split("ExecStart=")[1]
    assert "OnCalendar=Sun *-*-* 03:00\n" in timer
    assert "Persistent=true\n" in timer


# -- validation -----------------------------------------------------------------------------

# case: (platform, inputs, the variable the failure must name; None for valid input)
CASES = {
    "valid_debian13_distribution": ("debian13", {}, None),
    "valid_debian12_official_pinned": (
        "debian12", {"docker_install_source": "official",
                     "docker_official_version": "5:27.3.1-1~debian.12~bookworm"}, None),
    "valid_ubuntu2404_arm_official_with_pools": (
        "ubuntu2404_arm", {"docker_install_source": "official",
                           "docker_default_address_pools": [{"base": "172.20.0.0/14", "size": 24},
                                                            {"base": "fd00:d0c::/104", "size": 112}],
                           "docker_daemon_extra_options": {"storage-driver": "overlay2"}}, None),
    "unsupported_os": ("debian11", {"docker_install_source": "official"}, "docker_install_source"),
    "debian12_distribution": ("debian12", {}, "docker_install_source"),
    "ubuntu_distribution": ("ubuntu2204", {}, "docker_install_source"),
    "unknown_install_source": ("debian13", {"docker_install_source": "snap"}, "docker_install_source"),
    "unknown_log_driver": ("debian13", {"docker_log_driver": "syslog"}, "docker_log_driver"),
    "log_max_size_in_bytes_words": ("debian13", {"docker_log_max_size": "10MB"}, "docker_log_max_size"),
    "log_max_size_zero": ("debian13", {"docker_log_max_size": "0m"}, "docker_log_max_size"),
    "log_max_file_zero": ("debian13", {"docker_log_max_file": 0}, "docker_log_max_file"),
    "log_max_file_not_a_number": ("debian13", {"docker_log_max_file": "many"}, "docker_log_max_file"),
    "pool_bad_cidr": ("debian13", {"docker_default_address_pools": [{"base": "10.300.0.0/16", "size": 24}]},
                      "docker_default_address_pools"),
    "pool_without_prefix": ("debian13", {"docker_default_address_pools": [{"base": "10.0.0.0", "size": 24}]},
                            "docker_default_address_pools"),
    "pool_size_above_prefix": ("debian13", {"docker_default_address_pools": [{"base": "10.0.0.0/16", "size": 8}]},
                               "docker_default_address_pools"),
    "pool_without_size": ("debian13", {"docker_default_address_pools": [{"base": "10.0.0.0/16"}]},
                          "docker_default_address_pools"),
    "extra_options_set_a_managed_key": ("debian13", {"docker_daemon_extra_options": {"log-driver": "syslog"}},
                                        "docker_daemon_extra_options"),
    "version_with_distribution_source": ("debian13", {"docker_official_version": "5:27.3.1-1~debian.13~trixie"},
                                         "docker_official_version"),
    "version_without_epoch": ("debian12", {"docker_install_source": "official",
                                           "docker_official_version": "27.3.1"}, "docker_official_version"),
    "official_on_unknown_architecture": (
        "debian12", {"docker_install_source": "official"}, "docker_install_source"),
    "prune_age_zero": ("debian13", {"docker_prune_older_than_hours": 0}, "docker_prune_older_than_hours"),
    "users_not_a_list": ("debian13", {"docker_users": {"deploy": True}}, "docker_users"),
}
# A platform Docker publishes no packages for.
ARCHITECTURES = {"official_on_unknown_architecture": "s390x"}

PLAYBOOK = """
- name: Validation cases, one host each
  hosts: all
  gather_facts: false
  tasks:
    - name: Give each case the facts of its platform
      ansible.builtin.set_fact:
        ansible_distribution: "{{ case_facts.distribution }}"
        ansible_distribution_version: "{{ case_facts.distribution_version }}"
        ansible_distribution_major_version: "{{ case_facts.distribution_major_version }}"
        ansible_distribution_release: "{{ case_facts.distribution_release }}"
        ansible_architecture: "{{ case_facts.architecture }}"
        cacheable: true

    - name: Apply the docker role's entry point
      ansible.builtin.include_role:
        name: docker
        tasks_from: "{{ case_entry }}"
"""


def run_cases(tmp_path, entry, names):
    """Runs the role's entry point for the named cases (one local host each) in one
    ansible-playbook --check; returns {case: [(task name, result), ...]}."""
    hosts = {}
    for name in names:
        platform, inputs, _ = CASES[name]
        facts = dict(PLATFORMS[platform], architecture=ARCHITECTURES.get(name, PLATFORMS[platform]["architecture"]))
        hosts[name] = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                       "case_facts": facts, "case_entry": entry, **inputs}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    (tmp_path / "cases.yml").write_text(PLAYBOOK)
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_ROLES_PATH=str(REPO / "roles"),
               ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_FORKS="20")
    result = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "--check", "-i", str(tmp_path / "hosts.yml"),
         str(tmp_path / "cases.yml")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"ansible-playbook gave no JSON report:\n{result.stdout}\n{result.stderr}")
    ran = {name: [] for name in names}
    for play in report["plays"]:
        for task in play["tasks"]:
            for host, outcome in task["hosts"].items():
                ran[host].append((task["task"]["name"].removeprefix("docker : "), outcome))
    return ran


@pytest.fixture(scope="module")
def validate_entry(tmp_path_factory):
    """Every case through the `validate` entry point, as the preflight play runs it."""
    return run_cases(tmp_path_factory.mktemp("validate"), "validate", list(CASES))


@pytest.fixture(scope="module")
def main_entry(tmp_path_factory):
    """The invalid cases through the role's `main` entry point, as a deploy runs it."""
    invalid = [name for name, (_, _, variable) in CASES.items() if variable]
    return run_cases(tmp_path_factory.mktemp("main"), "main", invalid)


def failure(results):
    """The first failed task and its message, the messages of failed loop items included."""
    for task, outcome in results:
        if outcome.get("failed"):
            items = [str(item.get("msg", "")) for item in outcome.get("results", [])]
            return task, " ".join([str(outcome.get("msg", ""))] + items)
    return None, None


@pytest.mark.parametrize("case", [name for name, (_, _, variable) in CASES.items() if variable is None])
def test_valid_input_passes_validation(validate_entry, case):
    task, message = failure(validate_entry[case])
    assert task is None, f"{task}: {message}"


@pytest.mark.parametrize("case", [name for name, (_, _, variable) in CASES.items() if variable])
def test_invalid_input_fails_naming_the_variable(validate_entry, case):
    variable = CASES[case][2]
    task, message = failure(validate_entry[case])
    assert task is not None, f"{case} passed validation"
    assert variable in message, f"{task}: {message}"


@pytest.mark.parametrize("case", [name for name, (_, _, variable) in CASES.items() if variable])
def test_invalid_input_stops_the_role_before_any_change(main_entry, case):
    """Through the main entry point the failure is one of the validation tasks, and no task
    before it reports a change."""
    results = main_entry[case]
    task, message = failure(results)
    assert task is not None, f"{case}: the role ran on with invalid input"
    validation = [t["name"] for t in yaml.safe_load((ROLE / "tasks" / "validate.yml").read_text())]
    assert task.startswith("Validating arguments against arg spec 'main'") or task in validation, task
    assert CASES[case][2] in message, f"{task}: {message}"
    changed = [name for name, result in results if result.get("changed")]
    assert not changed, f"{case}: changed before failing: {changed}"
