"""The base role without Docker: its templates rendered with Ansible's own templating from the
role's defaults and vars, and its validate step run against edge-case inputs.

Also the helpers test_ssh.py uses: render() and validate()."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

REPO = Path(__file__).resolve().parents[2]
ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBmB4qkqBAnV8bC8m6Bd0I0q6g1Pz3u2qY6ZkZbJH9Xe ops@laptop"
RSA = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQC7vbqajDhA1kNWmJYyxVqH3QWcFvYyk0+Zk ops@laptop"
ECDSA = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEmKSENjQEezOmxkZMy7opKgwFB9 ops@laptop"


def _trusted(value):
    """Values loaded from the role's files are templates Ansible would render: mark them so."""
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {k: _trusted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_trusted(v) for v in value]
    return value


def templar(role, **inputs):
    """A Templar with the role's defaults, the given inputs over them, then the role's vars."""
    loader = DataLoader()
    role_dir = REPO / "roles" / role
    variables = _trusted(loader.load_from_file(str(role_dir / "defaults" / "main.yml")))
    variables.update(inputs)
    variables.update(_trusted(loader.load_from_file(str(role_dir / "vars" / "main.yml"))))
    variables["ansible_managed"] = "Ansible managed"
    return Templar(loader=loader, variables=variables)


def render(role, template, **inputs):
    source = (REPO / "roles" / role / "templates" / template).read_text()
    return templar(role, **inputs).template(trust_as_template(source))


def evaluate(role, expression, **inputs):
    return templar(role, **inputs).template(trust_as_template(expression))


def validate(role, cases, tmp_path):
    """Runs the role's validate entry point (argument specs, then tasks/validate.yml) once per
    case, all cases in one ansible-playbook run. Returns {case: "ok" or the failure message}."""
    hosts = {name: dict(inputs, ansible_connection="local", ansible_python_interpreter=sys.executable)
             for name, inputs in cases.items()}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    out = tmp_path / "outcomes.json"
    (tmp_path / "validate.yml").write_text(f"""
- hosts: all
  gather_facts: false
  tasks:
    - block:
        - ansible.builtin.include_role:
            name: {role}
            tasks_from: validate
        - ansible.builtin.set_fact:
            outcome: ok
      rescue:
        - ansible.builtin.set_fact:
            # A loop's message is "One or more items failed"; the items carry the real ones.
            outcome: >-
              {{{{ ([ansible_failed_result.msg] + ansible_failed_result.results | default([])
                   | map(attribute='msg', default='') | list) | join(' | ') }}}}
    - ansible.builtin.copy:
        dest: "{out}"
        content: "{{{{ dict(ansible_play_hosts_all | zip(ansible_play_hosts_all
                       | map('extract', hostvars, 'outcome'))) | to_json }}}}"
        mode: "0644"
      delegate_to: localhost
      run_once: true
""")
    env = dict(os.environ, ANSIBLE_ROLES_PATH=str(REPO / "roles"), ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
    run = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"),
         str(tmp_path / "validate.yml")], cwd=REPO, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads(out.read_text())


# --- templates -------------------------------------------------------------------------

def test_sysctl_file_is_sorted_with_extras_winning():
    text = render("base", "sysctl.conf.j2",
                  base_sysctl_extra_settings={"vm.swappiness": 1, "net.core.somaxconn": 8192})
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert lines == sorted(lines)
    assert "vm.swappiness = 1" in lines and "vm.swappiness = 10" not in lines
    assert "net.core.somaxconn = 8192" in lines
    assert text.startswith("# Ansible managed\n")


def test_sysctl_defaults_never_touch_ip_forwarding():
    text = render("base", "sysctl.conf.j2")
    settings = [line for line in text.splitlines() if not line.startswith("#")]
    assert not [line for line in settings if "forward" in line]
    assert "kernel.kptr_restrict = 2" in settings


def test_sysctl_file_with_no_settings_is_only_the_header():
    text = render("base", "sysctl.conf.j2", base_sysctl_settings={})
    assert all(line.startswith("#") for line in text.splitlines())


@pytest.mark.parametrize("enabled, reboot", [(True, False), (False, True)])
def test_unattended_upgrades(enabled, reboot):
    text = render("base", "unattended-upgrades.j2", base_unattended_upgrades_enabled=enabled,
                  base_unattended_upgrades_reboot_enabled=reboot,
                  base_unattended_upgrades_reboot_time="04:15")
    assert f'APT::Periodic::Unattended-Upgrade "{1 if enabled else 0}";' in text
    assert f'Unattended-Upgrade::Automatic-Reboot "{str(reboot).lower()}";' in text
    assert 'Unattended-Upgrade::Automatic-Reboot-Time "04:15";' in text
    # The list replaces Debian's, which also holds the non-security archive.
    clear = text.index("#clear Unattended-Upgrade::Origins-Pattern;")
    assert clear < text.index("Unattended-Upgrade::Origins-Pattern {")
    # apt expands ${distro_codename}; Jinja must leave it alone.
    assert '"origin=Debian,codename=${distro_codename}-security,label=Debian-Security";' in text
    assert "label=Debian;" not in text


def test_timesyncd_servers():
    text = render("base", "timesyncd.conf.j2", base_timesync_servers=["ntp1.example.com", "10.0.0.1"])
    assert "[Time]\nNTP=ntp1.example.com 10.0.0.1\n" in text


def test_timesyncd_without_servers_keeps_debians_pool():
    text = render("base", "timesyncd.conf.j2")
    assert "NTP=" not in text and "[Time]" in text


def test_journald_and_sudoers():
    assert "[Journal]\nSystemMaxUse=2G\n" in render(
        "base", "journald.conf.j2", base_journald_system_max_use="2G")
    assert render("base", "sudoers.j2", base_deploy_user="ops").splitlines()[-1] == \
        "ops ALL=(ALL:ALL) NOPASSWD: ALL"


def test_modprobe_block_list():
    text = render("base", "modprobe.conf.j2", base_blocked_kernel_modules=["dccp", "usb-storage"])
    assert text.splitlines()[2:] == ["install dccp /bin/false", "blacklist dccp",
                                     "install usb-storage /bin/false", "blacklist usb-storage"]
    assert all(line.startswith("#") for line in render(
        "base", "modprobe.conf.j2", base_blocked_kernel_modules=[]).splitlines())


# --- internal variables ----------------------------------------------------------------

@pytest.mark.parametrize("role, kind, expected", [
    ("guest", "docker", True), ("guest", "lxc", True), ("guest", "podman", True),
    ("guest", "container", True), ("guest", "kvm", False), ("host", "kvm", False),
    ("guest", "VirtualPC", False),
])
def test_container_detection(role, kind, expected):
    facts = {"virtualization_role": role, "virtualization_type": kind}
    assert evaluate("base", "{{ __base_in_container }}", ansible_facts=facts) is expected


def test_container_detection_without_facts_is_false_and_the_role_gathers_them():
    assert evaluate("base", "{{ __base_in_container }}", ansible_facts={}) is False
    tasks = REPO / "roles" / "base" / "tasks"
    assert "gather_subset" in (tasks / "container_facts.yml").read_text()
    # Each entry point gathers them before its first step that asks.
    for entry_point in ("main.yml", "host_settings_early.yml"):
        text = (tasks / entry_point).read_text()
        assert (text.index("import_tasks: container_facts.yml")
                < text.index("import_tasks: host_settings.yml")), entry_point
    main = (tasks / "main.yml").read_text()
    assert main.index("import_tasks: container_facts.yml") < main.index("__base_in_container")


@pytest.mark.parametrize("dpkg_lines, other, timesyncd", [
    ([], [], True),
    (["chrony not-installed"], [], True),
    (["chrony installed", "ntp config-files"], ["chrony"], False),
    (["ntpsec installed"], ["ntpsec"], False),
])
def test_other_time_daemon_keeps_the_clock(dpkg_lines, other, timesyncd):
    registered = {"stdout_lines": dpkg_lines}
    assert evaluate("base", "{{ __base_other_time_daemon }}", __base_time_daemons=registered) == other
    assert evaluate("base", "{{ __base_timesyncd_enabled }}", __base_time_daemons=registered) is timesyncd


def test_timesync_disabled_installs_no_timesyncd():
    assert evaluate("base", "{{ __base_timesyncd_enabled }}", base_timesync_enabled=False,
                    __base_time_daemons={"skipped": True}) is False


# --- the package lists refreshed before the preflight --------------------------------------
# The two shell scripts of tasks/package_lists_early.yml and tasks/packages.yml, rendered from
# the role and run with bash, real flock and setsid; apt-get and dockerd are stand-ins on PATH
# that record their calls (the real apt runs in the Molecule scenarios that deploy a fresh host).

FAKE_APT_GET = """#!/bin/sh
echo "$*" >> "$APT_CALLS"
if [ "$1" = update ]; then sleep "${UPDATE_SECONDS:-0}"; exit "${UPDATE_RC:-0}"; fi
"""


def _shell_script(tasks_file, task_name, tmp_path):
    tasks = yaml.safe_load((REPO / "roles" / "base" / "tasks" / tasks_file).read_text())
    task = next(task for task in tasks if task["name"] == task_name)
    engine = templar("base")
    variables = dict(engine.available_variables)
    variables.update(__base_package_lists_lock=str(tmp_path / "lists.lock"),
                     __base_package_lists_fresh_file=str(tmp_path / "lists.fresh"),
                     __base_apt_ended_file=str(tmp_path / "apt.ended"),
                     __base_missing_packages=["docker.io", "restic"])
    engine.available_variables = variables
    return engine.template(trust_as_template(task["ansible.builtin.shell"]["cmd"]))


def _apt_host(tmp_path, docker=False, **env):
    """A PATH with the stand-ins and the tools the scripts use (not this machine's own Docker),
    and the environment the scripts run with."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in ("sh", "flock", "setsid", "rm", "find", "touch", "seq", "sleep"):
        if not (bin_dir / tool).exists():
            (bin_dir / tool).symlink_to(shutil.which(tool))
    (bin_dir / "apt-get").write_text(FAKE_APT_GET)
    (bin_dir / "apt-get").chmod(0o755)
    if docker:
        (bin_dir / "dockerd").write_text("#!/bin/sh\n")
        (bin_dir / "dockerd").chmod(0o755)
    return dict(os.environ, PATH=str(bin_dir), APT_CALLS=str(tmp_path / "calls"), **env)


def _run(script, env):
    return subprocess.run([shutil.which("bash"), "-c", script], env=env, capture_output=True, text=True, timeout=60)


def _apt_calls(tmp_path):
    calls = tmp_path / "calls"
    return [line.split()[0] for line in calls.read_text().splitlines()] if calls.exists() else []


def test_early_refresh_is_waited_for_and_spares_the_transaction_its_own(tmp_path):
    env = _apt_host(tmp_path, UPDATE_SECONDS="2")
    early = _run(_shell_script("package_lists_early.yml", "Start refreshing apt's package lists on a host"
                               " without Docker", tmp_path), env)
    assert early.returncode == 0 and early.stdout.strip() == "started", early
    # The transaction starts while the refresh still runs: it waits for the lock, then installs
    # with the refreshed lists instead of refreshing them again.
    install = _run(_shell_script("packages.yml", "Install the missing packages in one apt transaction", tmp_path), env)
    assert install.returncode == 0, install
    assert _apt_calls(tmp_path) == ["update", "install"]
    assert not (tmp_path / "lists.fresh").exists()  # used once: the next transaction refreshes
    assert (tmp_path / "apt.ended").exists()


def test_a_failed_early_refresh_leaves_the_refresh_to_the_transaction(tmp_path):
    early = _run(_shell_script("package_lists_early.yml", "Start refreshing apt's package lists on a host"
                               " without Docker", tmp_path), _apt_host(tmp_path, UPDATE_RC="100"))
    assert early.stdout.strip() == "started"
    install = _run(_shell_script("packages.yml", "Install the missing packages in one apt transaction", tmp_path),
                   _apt_host(tmp_path))
    assert install.returncode == 0, install
    assert _apt_calls(tmp_path) == ["update", "update", "install"]


def test_no_early_refresh_on_a_host_with_docker(tmp_path):
    env = _apt_host(tmp_path, docker=True)
    early = _run(_shell_script("package_lists_early.yml", "Start refreshing apt's package lists on a host"
                               " without Docker", tmp_path), env)
    assert early.returncode == 0 and early.stdout == ""
    assert not (tmp_path / "lists.lock").exists()  # no refresh started
    install = _run(_shell_script("packages.yml", "Install the missing packages in one apt transaction", tmp_path), env)
    assert install.returncode == 0, install
    assert _apt_calls(tmp_path) == ["update", "install"]


def test_an_unreachable_host_stops_site_yml_before_the_preflight_for_every_host(tmp_path):
    """playbooks/package_lists.yml runs before the preflight: a host it cannot reach must stop
    the run for all of them there, as the preflight would, not drop out of the run alone."""
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {
        "reachable": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
        "unreachable": {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 1,
                        "ansible_ssh_common_args": "-o ConnectTimeout=2"},
    }, "children": {tier: {"hosts": {"reachable": None, "unreachable": None}}
                    for tier in ("lb", "app", "worker", "db", "cache")}}}))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STRATEGY="linear",
               ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_NOCOLOR="1")
    result = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"),
                             str(REPO / "site.yml")], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "UNREACHABLE" in result.stdout
    # Later plays print their names, but run no task on any host.
    assert re.findall(r"^TASK \[(.*?)\]", result.stdout, re.M) == [
        "base : Start refreshing apt's package lists on a host without Docker"], result.stdout[-3000:]
    recap = dict(re.findall(r"^(\w+)\s*:\s*(ok=.*)$", result.stdout.split("PLAY RECAP")[-1], re.M))
    # The reachable host ran the one task and no other.
    assert "unreachable=1" in recap["unreachable"] and recap["reachable"].startswith("ok=1 "), recap


# --- validate ----------------------------------------------------------------------------

def test_validate(tmp_path):
    cases = {
        "defaults": {},
        "keys": {"base_deploy_authorized_keys": [ED25519, RSA, ECDSA, 'from="10.0.0.0/8" ' + ED25519]},
        "root_user": {"base_deploy_user": "root"},
        "bad_user": {"base_deploy_user": "Deploy.User"},
        "private_key": {"base_deploy_authorized_keys": ["-----BEGIN OPENSSH PRIVATE KEY-----"]},
        "two_keys_one_line": {"base_deploy_authorized_keys": [ED25519 + "\n" + RSA]},
        "forwarding_off": {"base_sysctl_extra_settings": {"net.ipv4.ip_forward": 0}},
        "all_forwarding_off": {"base_sysctl_settings": {"net.ipv4.conf.all.forwarding": "0"}},
        "forwarding_on": {"base_sysctl_extra_settings": {"net.ipv4.ip_forward": 1}},
        "boolean_sysctl": {"base_sysctl_extra_settings": {"kernel.sysrq": False}},
        "path_sysctl": {"base_sysctl_extra_settings": {"kernel/sysrq": 0}},
        "swap": {"base_swap_size": "2G"},
        "fractional_swap": {"base_swap_size": "1.5G"},
        "relative_swap_file": {"base_swap_size": "1G", "base_swap_file": "swapfile"},
        "reboot_time": {"base_unattended_upgrades_reboot_time": "3:30"},
        "timezone": {"base_timezone": "America/Argentina/Buenos_Aires"},
        "bad_timezone": {"base_timezone": "Not a zone"},
        "journal_size": {"base_journald_system_max_use": "500MB"},
        "module": {"base_blocked_kernel_modules": ["dccp; rm -rf /"]},
        "spec_type": {"base_deploy_docker_enabled": "maybe"},
        "versioned_package": {"base_extra_packages": ["nginx=1.26.3-3"]},
        "dict_sysctl": {"base_sysctl_extra_settings": {"kernel.sysrq": {"a": 1}}},
    }
    results = validate("base", cases, tmp_path)
    for ok in ("defaults", "keys", "forwarding_on", "swap", "timezone"):
        assert results[ok] == "ok", (ok, results[ok])
    expected = {
        "root_user": "base_deploy_user", "bad_user": "base_deploy_user",
        "private_key": "base_deploy_authorized_keys", "two_keys_one_line": "base_deploy_authorized_keys",
        "forwarding_off": "net.ipv4.ip_forward", "all_forwarding_off": "net.ipv4.conf.all.forwarding",
        "boolean_sysctl": "kernel.sysrq", "path_sysctl": "kernel/sysrq",
        "fractional_swap": "base_swap_size", "relative_swap_file": "base_swap_file",
        "reboot_time": "base_unattended_upgrades_reboot_time", "bad_timezone": "base_timezone",
        "journal_size": "base_journald_system_max_use", "module": "base_blocked_kernel_modules",
        "spec_type": "base_deploy_docker_enabled", "versioned_package": "nginx=1.26.3-3",
        "dict_sysctl": "kernel.sysrq",
    }
    for case, variable in expected.items():
        assert variable in results[case], (case, results[case])
    for case in set(expected) - {"spec_type"}:
        assert "group_vars" in results[case], (case, results[case])
    assert "Docker needs it" in results["forwarding_off"]
