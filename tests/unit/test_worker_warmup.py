"""The caches every worker fills, warmed once in the strategy process before the workers fork
(plugins/speedups/worker_warmup.py, installed by the strategy plugin): the strategy process
must hold what a worker would otherwise load, and a playbook must give the same results with
the warm-up as without."""
import json
import subprocess

from conftest import REPO, VENV_BIN, run_on_two_local_hosts, without_times

# Run in a fresh interpreter: the test session itself may have loaded the same plugins.
PROBE = """
import importlib.util, json, sys
from ansible.plugins.loader import init_plugin_loader
init_plugin_loader()
from ansible._internal._task import UnifiedTaskResult
from ansible.playbook.task import Task

spec = importlib.util.spec_from_file_location("worker_warmup", sys.argv[1])
warmup = importlib.util.module_from_spec(spec)
spec.loader.exec_module(warmup)

def state():
    return {
        "profile": warmup.RESULT_PROFILE in sys.modules,
        "result_fields": UnifiedTaskResult.get_result_key_to_resolved_field_mapping.cache_info().currsize,
        "actions": sorted(name.rsplit(".", 1)[1] for name in sys.modules if name.startswith(
            ("ansible.plugins.action.", "ansible_collections.ansible.builtin.plugins.action."))),
    }

class Strategy:
    queued = []
    def _queue_task(self, host, task, task_vars, play_context):
        self.queued.append(task.action)

before = state()
strategy = warmup.install(Strategy)()
installed = state()
for action in ("ansible.builtin.template", "ansible.builtin.stat", "ansible.builtin.template"):
    strategy._queue_task("host", Task.load({"action": action, "args": {}}), {}, None)
print(json.dumps({"before": before, "installed": installed, "queued": state(), "passed_on": Strategy.queued}))
"""

PLAYBOOK = """
- hosts: all
  gather_facts: false
  tasks:
    - name: Write a file from a template (an action plugin of its own)
      ansible.builtin.template:
        src: greeting.j2
        dest: "{{ playbook_dir }}/out-{{ inventory_hostname }}.txt"
        mode: "0644"
      register: written

    - name: Read it (a module through the normal action)
      ansible.builtin.slurp:
        path: "{{ written.dest }}"
      register: read

    - name: Run a module of a collection in a loop
      community.general.ini_file:
        path: "{{ playbook_dir }}/settings-{{ inventory_hostname }}.ini"
        section: main
        option: "{{ item }}"
        value: "on"
        mode: "0644"
      loop: [first, second]

    - name: Fail a module on the flagged host
      ansible.builtin.command: "{{ 'false' if host_flag | default(false) else 'true' }}"
      changed_when: false
      ignore_errors: true

    - name: Show what they gave
      ansible.builtin.debug:
        msg: "{{ read.content | b64decode }} {{ written.changed }}"
"""


def test_the_strategy_process_loads_what_each_worker_would_load():
    probe = subprocess.run([str(VENV_BIN / "python"), "-c", PROBE, str(REPO / "plugins/speedups/worker_warmup.py")],
                           cwd=REPO, capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr[-3000:]
    states = json.loads(probe.stdout)
    assert states["before"] == {"profile": False, "result_fields": 0, "actions": []}
    # How module results are decoded, and the typed fields of a result, from and to a module.
    assert states["installed"]["profile"] is True
    assert states["installed"]["result_fields"] == 2
    # template's own action plugin, and normal for stat: once each, then the strategy's own
    # _queue_task forks as before, for every task.
    assert states["queued"]["actions"] == ["normal", "template"]
    assert states["passed_on"] == ["ansible.builtin.template", "ansible.builtin.stat", "ansible.builtin.template"]


def run(directory, warmup):
    """The report of the playbook, run in its own directory, without what differs by run
    (times, that directory in the paths, the temporary copy a template is written from)."""
    directory.mkdir()
    (directory / "greeting.j2").write_text("hello {{ inventory_hostname }}\n")
    report = without_times(run_on_two_local_hosts(directory, PLAYBOOK, {
        "DEPLOYER_WORKER_WARMUP": "on" if warmup else "off"}))
    for play in report["plays"]:
        for task in play["tasks"]:
            for result in task["hosts"].values():
                result.pop("src", None)
    return json.loads(json.dumps(report).replace(str(directory), "DIR"))


def test_the_results_are_the_same_with_the_warm_up(tmp_path):
    warmed = run(tmp_path / "on", warmup=True)
    assert warmed == run(tmp_path / "off", warmup=False)
    assert warmed["stats"]["flagged"]["ignored"] == 1 and warmed["stats"]["plain"]["ignored"] == 0
    assert warmed["stats"]["plain"]["changed"] == 2  # the template and the ini file
