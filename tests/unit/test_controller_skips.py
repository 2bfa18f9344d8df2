"""Tasks whose `when` is false, skipped by the control node without a worker
(plugins/speedups/controller_skips.py, installed by the strategy plugin): a playbook of the
kinds of `when` the roles use must give the same results, registered values, errors and recap
as with every task sent to a worker, with fewer workers forked."""
from conftest import run_on_two_local_hosts, tasks_by_name, without_times

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
    """The report of the playbook with false `when`s decided by the strategy process, or by
    workers; with debug, the number of workers forked."""
    (tmp_path / "included.yml").write_text("- ansible.builtin.debug:\n    msg: included\n")
    return run_on_two_local_hosts(tmp_path, PLAYBOOK, {
        "DEPLOYER_CONTROLLER_SKIPS": "on" if skips else "off", "CONTROLLER_SKIPS_TEST": "no",
        # Only this speedup is compared: the other runs the debug tasks without a worker.
        "DEPLOYER_CONTROLLER_ACTIONS": "off"}, debug)


def test_the_results_are_those_of_workers(tmp_path):
    with_skips = without_times(run(tmp_path, skips=True))
    by_workers = without_times(run(tmp_path, skips=False))
    assert with_skips == by_workers
    tasks = tasks_by_name(with_skips)
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
