"""Tasks whose `when` is false, skipped by the control node without a worker
(plugins/speedups/controller_skips.py, installed by the strategy plugin): a playbook of the
kinds of `when` the roles use must give the same results, registered values, errors and recap
as with every task sent to a worker, with fewer workers forked."""
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
    - name: Never on the first host
      ansible.builtin.debug:
        msg: handler ran
      when: flag | bool
  tasks:
    - name: Skipped where the flag is off
      ansible.builtin.debug:
        msg: flag
      when: flag | bool
      register: flagged

    - name: Show what was registered
      ansible.builtin.debug:
        var: flagged

    - name: Decided on what a skipped task registered
      ansible.builtin.debug:
        msg: the first task was skipped here
      when: flagged is skipped

    - name: Read a connection variable the play context adds
      ansible.builtin.debug:
        msg: "{{ ansible_host }}"
      when: ansible_host is defined

    - name: Read a lookup
      ansible.builtin.debug:
        msg: looked up
      when: lookup('ansible.builtin.env', 'CONTROLLER_SKIPS_TEST') == 'yes'

    - name: Skip an include
      ansible.builtin.include_tasks: included.yml
      when: not (flag | bool)

    - name: Skip some items of a loop
      ansible.builtin.debug:
        msg: "{{ item }}"
      loop: [1, 2]
      when: item > 1 or flag | bool

    - name: Skip a block
      when: flag | bool
      block:
        - name: Inside the block
          ansible.builtin.debug:
            msg: block ran
          notify: Never on the first host

    - name: Skip a task whose output is hidden
      ansible.builtin.debug:
        msg: secret
      no_log: true
      when: flag | bool
      register: hidden

    - name: Show what the hidden task registered
      ansible.builtin.debug:
        var: hidden

    - name: Run once, skipped
      ansible.builtin.debug:
        msg: once
      run_once: true
      when: flag | bool

    - name: Fail on an undefined variable in when
      ansible.builtin.debug:
        msg: never
      when: not_defined_anywhere
      ignore_errors: true

    - name: Rescue
      block:
        - name: Fail on the flagged host
          ansible.builtin.fail:
            msg: flagged
          when: flag | bool
      rescue:
        - name: Say why, unless it is the other host
          ansible.builtin.debug:
            msg: "{{ ansible_failed_result.msg }}"
          when: ansible_failed_result.msg != 'other'
"""


def run(tmp_path, skips, debug=False):
    """The json callback's report of the playbook on two local hosts, and the number of workers
    forked (ansible-core's debug log says "worker is N" for each)."""
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    (tmp_path / "included.yml").write_text("- ansible.builtin.debug:\n    msg: included\n")
    python = VENV_BIN / "python"
    (tmp_path / "inventory").write_text(
        f"plain ansible_connection=local ansible_python_interpreter={python}\n"
        f"flagged ansible_connection=local ansible_python_interpreter={python} host_flag=true\n")
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STRATEGY="mitogen_linear",
               ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
               DEPLOYER_CONTROLLER_SKIPS="on" if skips else "off", CONTROLLER_SKIPS_TEST="no",
               # Only this speedup is compared: the other runs the debug tasks without a worker.
               DEPLOYER_CONTROLLER_ACTIONS="off",
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
    return report


def test_the_results_are_those_of_workers(tmp_path):
    with_skips = without_times(run(tmp_path, skips=True))
    by_workers = without_times(run(tmp_path, skips=False))
    assert with_skips == by_workers
    tasks = {}  # the json callback may list a task once per host
    for task in with_skips["plays"][0]["tasks"]:
        tasks.setdefault(task["task"]["name"], {}).update(task["hosts"])
    # The cases are the ones meant: skipped on the plain host, and run where they should.
    assert tasks["Skipped where the flag is off"]["plain"]["skipped"] is True
    assert tasks["Skipped where the flag is off"]["flagged"]["msg"] == "flag"
    assert tasks["Show what was registered"]["plain"]["flagged"]["skip_reason"] == "Conditional result was False"
    assert tasks["Decided on what a skipped task registered"]["plain"]["msg"] == "the first task was skipped here"
    assert tasks["Decided on what a skipped task registered"]["flagged"]["skipped"] is True
    assert tasks["Read a connection variable the play context adds"]["plain"]["msg"] == "plain"
    assert tasks["Read a lookup"]["plain"]["skipped"] is True
    assert tasks["Show what the hidden task registered"]["plain"]["hidden"]["skipped"] is True
    assert "not_defined_anywhere" in tasks["Fail on an undefined variable in when"]["plain"]["msg"]
    assert tasks["Say why, unless it is the other host"]["flagged"]["msg"] == "flagged"
    assert with_skips["stats"]["plain"]["skipped"] > 5, with_skips["stats"]
    assert with_skips["stats"]["flagged"]["rescued"] == 1, with_skips["stats"]


def test_a_task_skipped_by_the_control_node_forks_no_worker(tmp_path):
    forked_with_skips = run(tmp_path, skips=True, debug=True)
    forked_without = run(tmp_path, skips=False, debug=True)
    # Each task whose `when` is false on a host, without a loop: 6 on the plain host (the
    # run_once task only asks the first host) and 3 on the flagged one.
    assert forked_without - forked_with_skips == 9, (forked_without, forked_with_skips)
