import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent

# The unit tests run many short ansible-playbook runs on localhost, where Mitogen (the
# project's default strategy) costs more to start than it saves: Ansible's own linear
# strategy, for every Ansible process the tests start.
os.environ["ANSIBLE_STRATEGY"] = "linear"


@pytest.fixture
def ansible_vars(tmp_path):
    """Evaluate variables for every host of an inventory the way a playbook in playbooks/
    sees them (with group_vars/all/wiring.yml loaded). Returns {host: {var: value}}."""

    def evaluate(inventory_yaml: str, names: list[str], before: list | None = None) -> dict:
        """before: tasks to run first, such as a playbook's pre_tasks."""
        (tmp_path / "hosts.yml").write_text(inventory_yaml)
        (tmp_path / "group_vars").symlink_to(REPO / "group_vars")
        out = tmp_path / "out"
        out.mkdir()
        probe = {"ansible.builtin.copy": {"dest": f"{out}/{{{{ inventory_hostname }}}}.json",
                                          "content": "{{ probe | to_json }}"},
                 "delegate_to": "localhost",
                 "vars": {"probe": {n: f"{{{{ {n} }}}}" for n in names}}}
        (tmp_path / "probe.yml").write_text(yaml.safe_dump(
            [{"hosts": "all", "gather_facts": False, "tasks": [*(before or []), probe]}]))
        env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
        result = subprocess.run(
            [str(VENV_BIN / "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"),
             str(tmp_path / "probe.yml")],
            cwd=REPO, env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        return {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}

    return evaluate


def validate_role_cases(role: str, cases: dict, valid: dict, tmp: Path) -> dict:
    """Runs roles/<role>'s validate entry point once per case, a host each with the valid
    inputs plus the case's own, and returns {case: failure message or None}."""
    hosts = {name: {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                    **valid, **inputs} for name, (inputs, _) in cases.items()}
    # An inventory cannot set ansible_facts: a case's facts become cacheable set_facts first,
    # which replace the gathered ones in ansible_facts.
    fact_names = sorted({name for host in hosts.values() for name in host.get("ansible_facts", {})})
    for host in hosts.values():
        host["case_facts"] = host.pop("ansible_facts", {})
    tasks = [{"ansible.builtin.set_fact": {f"ansible_{name}": f"{{{{ case_facts['{name}'] }}}}", "cacheable": True},
              "when": f"case_facts['{name}'] is defined"} for name in fact_names]
    tasks.append({"ansible.builtin.include_role": {"name": role, "tasks_from": "validate"}})
    (tmp / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    (tmp / "validate.yml").write_text(yaml.safe_dump([{"hosts": "all", "gather_facts": False, "tasks": tasks}]))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_ROLES_PATH=str(REPO / "roles"))
    result = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", str(tmp / "hosts.yml"),
                             str(tmp / "validate.yml")], cwd=tmp, env=env, capture_output=True, text=True)
    report = json.loads(result.stdout)
    failures = {name: None for name in cases}
    for task in report["plays"][0]["tasks"][len(fact_names):]:
        for name, outcome in task["hosts"].items():
            if outcome.get("failed") and failures[name] is None:
                # A loop only says that an item failed: take the failed assertions' messages.
                items = [item["msg"] for item in outcome.get("results", []) if "assertion" in item]
                failures[name] = " ".join(items) or outcome.get("msg", "")
    return failures


def run_on_two_local_hosts(tmp_path, playbook: str, env: dict, debug: bool = False):
    """The json callback's report of a playbook on two local hosts, `plain` and `flagged`
    (host_flag=true), with the project's strategy (mitogen_linear and the speedups it installs,
    each turned on or off by env); with debug, the number of workers forked instead
    (ansible-core's debug log says "worker is N" for each)."""
    (tmp_path / "play.yml").write_text(playbook)
    python = VENV_BIN / "python"
    (tmp_path / "inventory").write_text(
        f"plain ansible_connection=local ansible_python_interpreter={python}\n"
        f"flagged ansible_connection=local ansible_python_interpreter={python} host_flag=true\n")
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STRATEGY="mitogen_linear",
               ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
               DEPLOYER_TEMPLATE_CACHE_DIR=str(tmp_path / "template-cache"), **env)
    if debug:
        env["ANSIBLE_DEBUG"] = "1"
    result = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", str(tmp_path / "inventory"),
                             str(tmp_path / "play.yml")],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    if debug:
        return sum("worker is " in line for line in (result.stdout + result.stderr).splitlines())
    return json.loads(result.stdout)


def without_times(report: dict) -> dict:
    """A json callback report without what differs from run to run: durations, ids and the
    timing fields of command results (also where a task registered them)."""
    for play in report["plays"]:
        play["play"].pop("duration", None)
        play["play"].pop("id", None)
        for task in play["tasks"]:
            task["task"].pop("duration", None)
            task["task"].pop("id", None)
            for host in task["hosts"].values():
                for result in (host, *(value for value in host.values() if isinstance(value, dict))):
                    for key in ("start", "end", "delta"):
                        result.pop(key, None)
    return report


def tasks_by_name(report: dict) -> dict:
    """{task name: {host: result}} of a json callback report's first play (the callback may
    list a task once per host)."""
    tasks = {}
    for task in report["plays"][0]["tasks"]:
        tasks.setdefault(task["task"]["name"], {}).update(task["hosts"])
    return tasks
