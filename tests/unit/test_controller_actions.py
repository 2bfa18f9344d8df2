"""Tasks that never touch the host, run in the strategy process without a worker
(plugins/speedups/controller_actions.py, installed by the strategy plugin): a playbook of the
kinds of such tasks the roles use must give the same results, registered values, facts,
errors, handlers and recap as with every task sent to a worker, with fewer workers forked."""
import json
import os
import subprocess

from conftest import REPO, VENV_BIN

PLAYBOOK = """
- hosts: all
  gather_facts: false
  vars:
    flag: "{{ host_flag | default(false) }}"
  handlers:
    - name: Say that a fact changed
      ansible.builtin.debug:
        msg: "handler on {{ inventory_hostname }}"
  tasks:
    - name: Set a fact from a template
      ansible.builtin.set_fact:
        greeting: "hello {{ inventory_hostname }}"
        numbers: "{{ [1, 2, 3] | map('int') | list }}"

    - name: Set a fact and notify a handler
      ansible.builtin.set_fact:
        noted: true
      changed_when: true
      notify: Say that a fact changed

    - name: Set a fact in a loop, registered
      ansible.builtin.set_fact:
        "item_{{ item }}": "{{ item * 10 }}"
      loop: [1, 2]
      register: looped

    - name: Set a fact on the other host
      ansible.builtin.set_fact:
        set_by_plain: "{{ inventory_hostname }}"
      delegate_to: flagged
      delegate_facts: true
      run_once: true

    - name: Show the facts
      ansible.builtin.debug:
        msg: "{{ greeting }} {{ numbers | sum }} {{ item_1 }} {{ item_2 }} {{ looped.results | length }}"

    - name: Show a variable
      ansible.builtin.debug:
        var: set_by_plain
      when: flag | bool

    - name: Assert what holds, registered
      ansible.builtin.assert:
        that: greeting is match('hello ')
        quiet: true
      register: asserted

    - name: Assert what does not hold on the flagged host
      ansible.builtin.assert:
        that: not (flag | bool)
        fail_msg: "the flag is set on {{ inventory_hostname }}"
      ignore_errors: true

    - name: Fail on an undefined variable in the arguments
      ansible.builtin.set_fact:
        broken: "{{ not_defined_anywhere }}"
      ignore_errors: true

    - name: Fail and rescue
      block:
        - name: Fail with a message
          ansible.builtin.fail:
            msg: "failing on {{ inventory_hostname }}"
          when: flag | bool
      rescue:
        - name: Say why
          ansible.builtin.debug:
            msg: "{{ ansible_failed_result.msg }}"

    - name: Hide what a task sets
      ansible.builtin.set_fact:
        secret: s3cret
      no_log: true
      register: hidden

    - name: Show what the hidden task registered
      ansible.builtin.debug:
        var: hidden

    - name: Include tasks in a loop
      ansible.builtin.include_tasks: included.yml
      loop: [a, b]

    - name: Include a role whose arguments are checked
      ansible.builtin.include_role:
        name: checked
      vars:
        checked_count: 2

    - name: Include the role with a wrong argument
      block:
        - name: Include it
          ansible.builtin.include_role:
            name: checked
          vars:
            checked_count: many
      rescue:
        - name: Say what the check said
          ansible.builtin.debug:
            msg: "{{ ansible_failed_result.msg }}"

    - name: A module next to them
      ansible.builtin.command: echo module
      changed_when: false
      register: module_output

    - name: Read the module's output
      ansible.builtin.assert:
        that: module_output.stdout == 'module'
"""

ROLE_SPEC = """
argument_specs:
  main:
    short_description: A role whose inputs are checked
    options:
      checked_count:
        type: int
        required: true
        description: A number.
"""


def run(tmp_path, actions, debug=False):
    """The json callback's report of the playbook on two local hosts, and the number of workers
    forked (ansible-core's debug log says "worker is N" for each)."""
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    (tmp_path / "included.yml").write_text(
        "- ansible.builtin.set_fact:\n    \"included_{{ item }}\": true\n")
    role = tmp_path / "roles" / "checked"
    (role / "meta").mkdir(parents=True, exist_ok=True)
    (role / "tasks").mkdir(exist_ok=True)
    (role / "meta" / "argument_specs.yml").write_text(ROLE_SPEC)
    (role / "tasks" / "main.yml").write_text(
        "- ansible.builtin.set_fact:\n    checked_twice: \"{{ checked_count * 2 }}\"\n")
    python = VENV_BIN / "python"
    (tmp_path / "inventory").write_text(
        f"plain ansible_connection=local ansible_python_interpreter={python}\n"
        f"flagged ansible_connection=local ansible_python_interpreter={python} host_flag=true\n")
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STRATEGY="mitogen_linear",
               ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_ROLES_PATH=str(tmp_path / "roles"),
               DEPLOYER_CONTROLLER_ACTIONS="on" if actions else "off",
               # Only this speedup is compared: the other sends skipped tasks to no worker either way.
               DEPLOYER_CONTROLLER_SKIPS="off",
               DEPLOYER_TEMPLATE_CACHE_DIR=str(tmp_path / "template-cache"))
    if debug:
        env["ANSIBLE_DEBUG"] = "1"
    result = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", str(tmp_path / "inventory"),
                             str(tmp_path / "play.yml")],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    if debug:
        return sum("worker is " in line for line in (result.stdout + result.stderr).splitlines())
    return json.loads(result.stdout)


def without_times(report):
    """The report without what differs from run to run: durations and ids."""
    for play in report["plays"]:
        play["play"].pop("duration", None)
        play["play"].pop("id", None)
        for task in play["tasks"]:
            task["task"].pop("duration", None)
            task["task"].pop("id", None)
            for host in task["hosts"].values():
                # The command's own timing.
                for key in ("start", "end", "delta"):
                    host.pop(key, None)
                if isinstance(host.get("module_output"), dict):
                    for key in ("start", "end", "delta"):
                        host["module_output"].pop(key, None)
    return report


def test_the_results_are_those_of_workers(tmp_path):
    here = without_times(run(tmp_path, actions=True))
    by_workers = without_times(run(tmp_path, actions=False))
    assert here == by_workers
    tasks = {}  # the json callback may list a task once per host
    for task in here["plays"][0]["tasks"]:
        tasks.setdefault(task["task"]["name"], {}).update(task["hosts"])
    # The cases are the ones meant.
    assert tasks["Show the facts"]["plain"]["msg"] == "hello plain 6 10 20 2"
    assert tasks["Show a variable"]["flagged"]["set_by_plain"] == "plain"
    assert tasks["Assert what does not hold on the flagged host"]["flagged"]["msg"] == "the flag is set on flagged"
    assert tasks["Assert what does not hold on the flagged host"]["plain"].get("failed") is not True
    assert "not_defined_anywhere" in tasks["Fail on an undefined variable in the arguments"]["plain"]["msg"]
    assert tasks["Say why"]["flagged"]["msg"] == "failing on flagged"
    assert "s3cret" not in json.dumps(tasks["Hide what a task sets"]), tasks["Hide what a task sets"]
    assert "checked_count" in tasks["Say what the check said"]["plain"]["msg"]
    assert tasks["Say that a fact changed"]["flagged"]["msg"] == "handler on flagged"
    assert here["stats"]["flagged"]["rescued"] == 2, here["stats"]
    assert here["stats"]["plain"]["ignored"] == 1, here["stats"]


def test_a_task_run_by_the_control_node_forks_no_worker(tmp_path):
    forked_here = run(tmp_path, actions=True, debug=True)
    forked_by_workers = run(tmp_path, actions=False, debug=True)
    # The command on each host is the one task that still forks.
    assert forked_here == 2, forked_here
    assert forked_by_workers > 40, forked_by_workers
