"""The base role's background apt transaction (playbooks/common.yml starts it, copies the image
archives meanwhile, then waits): when apt fails, the wait fails with apt's own message, and a
host that has every package starts no apt run and waits for none. Runs Ansible on the control
node against the converged host; the failing run asks for a package that does not exist."""
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
MISSING = "no-such-package-deployer-test"


def run_in_background(tmp_path, extra_packages):
    (tmp_path / "play.yml").write_text("""
- hosts: hardened
  gather_facts: false
  tasks:
    - ansible.builtin.include_role: {name: base, tasks_from: packages_background}
    - ansible.builtin.include_role: {name: base, tasks_from: packages_wait}
""")
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_FORCE_COLOR="false",
               ANSIBLE_NOCOLOR="true")
    return subprocess.run(
        [str(PLAYBOOK), "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(tmp_path / "play.yml"),
         "-e", '{"base_extra_packages": %s}' % extra_packages],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_a_failed_apt_transaction_fails_the_wait_with_apts_message(tmp_path):
    run = run_in_background(tmp_path, f'["{MISSING}"]')
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    failed_task = out.split("fatal:")[0].rsplit("TASK [", 1)[1]
    assert failed_task.startswith("base : Wait until the packages are installed"), out
    assert f"Unable to locate package {MISSING}" in out, out


def test_a_host_with_every_package_waits_for_nothing(tmp_path):
    run = run_in_background(tmp_path, '["htop"]')
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    for task in ("base : Install the missing packages in one apt transaction",
                 "base : Wait until the apt transaction has ended",
                 "base : Wait until the packages are installed"):
        assert out.split(f"TASK [{task}]", 1)[1].split("TASK [", 1)[0].split("*\n", 1)[1].lstrip().startswith("skipping:"), out
