"""Tasks that never touch the host, run in the strategy process without a worker
(plugins/speedups/controller_actions.py, installed by the strategy plugin): a playbook of the
kinds of such tasks the roles use must give the same results, registered values, facts,
errors, handlers and recap as with every task sent to a worker, with fewer workers forked."""
import json

from conftest import run_on_two_local_hosts, tasks_by_name, without_times

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
    """The report of the playbook with the tasks that never touch the host run by the strategy
    process, or by workers; with debug, the number of workers forked."""
    (tmp_path / "included.yml").write_text(
        "- ansible.builtin.set_fact:\n    \"included_{{ item }}\": true\n")
    role = tmp_path / "roles" / "checked"
    (role / "meta").mkdir(parents=True, exist_ok=True)
    (role / "tasks").mkdir(exist_ok=True)
    (role / "meta" / "argument_specs.yml").write_text(ROLE_SPEC)
    (role / "tasks" / "main.yml").write_text(
        "- ansible.builtin.set_fact:\n    checked_twice: \"{{ checked_count * 2 }}\"\n")
    return run_on_two_local_hosts(tmp_path, PLAYBOOK, {
        "ANSIBLE_ROLES_PATH": str(tmp_path / "roles"),
        "DEPLOYER_CONTROLLER_ACTIONS": "on" if actions else "off",
        # Only this speedup is compared: the other sends skipped tasks to no worker either way.
        "DEPLOYER_CONTROLLER_SKIPS": "off"}, debug)


def test_the_results_are_those_of_workers(tmp_path):
    here = without_times(run(tmp_path, actions=True))
    by_workers = without_times(run(tmp_path, actions=False))
    assert here == by_workers
    tasks = tasks_by_name(here)
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
